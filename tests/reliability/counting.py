"""What happened, counted where it happened rather than where the runbook says it did: the
sandbox API server's audit log (each change the runbook's own user got committed, and what
the change wrote), and the workflow history (each activity scheduled, and the attempt that
finished it). Redis's side is `tests.harness.command_calls` (INFO commandstats)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowHandle

from contracts.kubernetes import CACHE_ENV, RESTARTED_AT
from sandbox.cluster import SandboxCluster
from sandbox.kube.api import AuditRecord

WRITE_OPS = ("add", "replace", "remove")


def committed(cluster: SandboxCluster, verb: str, resource: str) -> list[AuditRecord]:
    """The runbook's requests of this verb and resource that the API server carried out (2xx),
    whether or not the client lived to read the answer."""
    return [
        r
        for r in list(cluster.api.audit)
        if r.user == cluster.runbook_user
        and r.verb == verb
        and r.resource == resource
        and 200 <= r.code < 300
    ]


def refused(cluster: SandboxCluster, verb: str, resource: str) -> list[AuditRecord]:
    """The runbook's requests an injected failure turned away."""
    return [
        r
        for r in list(cluster.api.audit)
        if r.user == cluster.runbook_user
        and r.verb == verb
        and r.resource == resource
        and r.injected is not None
        and r.code >= 400
    ]


def effects(record: AuditRecord) -> tuple[str, ...]:
    """What a committed JSON patch wrote that the runbook's steps are about, e.g.
    ("CACHE_ENABLED=false", "replicas=8") for enable_fallback; its `test` guards and
    bookkeeping annotations left out."""
    found: list[str] = []
    ops: list[dict[str, Any]] = record.request_object or []
    for op in ops:
        if op.get("op") not in WRITE_OPS:
            continue
        path, value = str(op.get("path", "")), op.get("value")
        if path == "/spec/replicas":
            found.append(f"replicas={value}")
        elif RESTARTED_AT.rpartition("/")[2] in json.dumps(op):
            found.append("restartedAt")
        for env in value if isinstance(value, list) else [value]:
            if isinstance(env, dict) and env.get("name") == CACHE_ENV:
                found.append(f"{CACHE_ENV}={env.get('value')}")
    return tuple(sorted(found))


def deployment_changes(cluster: SandboxCluster) -> list[tuple[str, ...]]:
    """Each patch of the API Deployment the runbook got committed, by what it wrote."""
    return [effects(r) for r in committed(cluster, "patch", "deployments")]


FALLBACK_AND_BACK = [
    ("CACHE_ENABLED=false", "replicas=8"),  # enable_fallback
    ("CACHE_ENABLED=true",),  # re_enable
    ("replicas=3",),  # scale, back to the replicas before the fallback
]


@dataclass(frozen=True)
class ActivityRuns:
    """Per activity type: how often the workflow scheduled it, and for each of those the
    attempt that finished it (1 = the first try did; 2 = one retry was needed)."""

    scheduled: Counter[str]
    attempts: dict[str, list[int]]

    def retried(self, name: str) -> bool:
        return any(attempt > 1 for attempt in self.attempts.get(name, []))


async def activity_runs(handle: WorkflowHandle[Any, Any]) -> ActivityRuns:
    history = await handle.fetch_history()
    names: dict[int, str] = {}
    scheduled: Counter[str] = Counter()
    attempts: dict[str, list[int]] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            names[event.event_id] = name
            scheduled[name] += 1
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            name = names[started.scheduled_event_id]
            attempts.setdefault(name, []).append(started.attempt)
    return ActivityRuns(scheduled, attempts)
