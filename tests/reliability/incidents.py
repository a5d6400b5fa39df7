"""One redis_down incident on the sandbox cluster, as the reliability cases run it: the
incident, the worker's runbook.yaml for it, what the API Deployment looks like, and waiting
for a condition (never a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle

from contracts.incident import IncidentReport, IncidentStatus
from sandbox.cluster import SandboxCluster
from tests.harness import target_route
from tests.sandbox_checks import CATALOG, ROLE, TO_FALLBACK, api_state, incident, until

__all__ = [
    "CATALOG",
    "ROLE",
    "TO_FALLBACK",
    "api_state",
    "generations",
    "incident",
    "steps",
    "until",
    "until_heartbeating",
    "until_status",
    "worker_config",
]

NS = "treebeard-production"


def worker_config(cluster: SandboxCluster, task_queue: str, **sections: Any) -> dict[str, Any]:
    """The runbook.yaml of a `runbook worker` process acting on this sandbox as the Role."""
    return {
        "temporal": {"task_queue": task_queue},
        "kubernetes": {"kubeconfig": str(cluster.runbook_kubeconfig)},
        "targets": [target_route(cluster.redis_url)],
        "recovery": {"watch_interval": "0.2s", "watch_deadline": "1s"},
        **sections,
    }


def generations(cluster: SandboxCluster) -> tuple[int, int]:
    """metadata.generation of (the Redis StatefulSet, the API Deployment): each spec change
    bumps it by one, so it counts the changes that took effect."""
    with cluster.api_client() as api:
        apps = client.AppsV1Api(api)
        sts = apps.read_namespaced_stateful_set("redis", NS)
        deploy = apps.read_namespaced_deployment("treebeard-api", NS)
    assert sts.metadata is not None and deploy.metadata is not None
    return int(sts.metadata.generation or 0), int(deploy.metadata.generation or 0)


def answers(cluster: SandboxCluster) -> bool:
    try:
        with cluster.redis() as conn:
            return bool(conn.ping())
    except Exception:
        return False


def steps(report: IncidentReport) -> list[tuple[str, str]]:
    return [(s.name.value, s.status) for s in report.steps]


async def until_status(
    handle: WorkflowHandle[Any, Any],
    check: Callable[[IncidentStatus], bool],
    what: str,
    within: float = 60.0,
) -> IncidentStatus:
    """Poll the `status` query until it satisfies `check`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status: IncidentStatus = await handle.query("status", result_type=IncidentStatus)
        if check(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"never happened within {within}s: {what} (phase {status.phase})")
        await asyncio.sleep(0.2)


async def until_heartbeating(
    handle: WorkflowHandle[Any, Any], activity: str, within: float = 60.0
) -> None:
    """Until an attempt of `activity` has started on a worker and heartbeated: the step is
    inside its loop, not about to be scheduled nor between attempts."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        described = await handle.describe()
        if any(
            pending.activity_type.name == activity
            and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            and pending.heartbeat_details.payloads
            for pending in described.raw_description.pending_activities
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{activity} never heartbeated within {within}s")
        await asyncio.sleep(0.2)
