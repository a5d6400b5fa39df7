"""The restart budget: past `limits.restarts_per_hour` restarts of one target, a restart waits
for a person. The count lives on the StatefulSet, so it holds across incidents and workers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from temporalio.testing import WorkflowEnvironment

from activities.kubernetes.inspect import restart_history
from activities.kubernetes.plans import plan_record_restart
from activities.policy import Policy
from contracts.diagnosis import Diagnosis, Scenario
from contracts.kubernetes import RESTART_HISTORY, KubernetesFacts, StatefulSetFacts
from contracts.steps import StepName
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, settings_for, start, wait_for_pending
from tests.sandbox_checks import incident
from workflows.runbook.plan import plan_for

NS = "treebeard-production"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def down_with_restarts(*minutes_ago: int) -> Diagnosis:
    sts = StatefulSetFacts(
        name="redis", replicas=1, restarts=[NOW - timedelta(minutes=m) for m in minutes_ago]
    )
    facts = KubernetesFacts(taken_at=NOW, reachable=True, statefulset=sts)
    return Diagnosis(
        redis_url="redis://127.0.0.1:1/0",
        taken_at=NOW,
        reachable=False,
        kubernetes=facts,
    )


def restart_step(diagnosis: Diagnosis, per_hour: int) -> Any:
    policy = Policy.model_validate({"limits": {"restarts_per_hour": per_hour}})
    plan = plan_for(Scenario.REDIS_DOWN, diagnosis, policy)
    return next(s for s in plan if s.name is StepName.RESTART)


def test_restart_runs_on_its_own_within_the_budget() -> None:
    step = restart_step(down_with_restarts(10, 20, 90, 300), per_hour=3)
    assert not step.requires_approval  # two in the last hour; the older ones do not count


def test_restart_past_the_budget_waits_for_approval() -> None:
    step = restart_step(down_with_restarts(5, 25, 55), per_hour=3)
    assert step.requires_approval and step.approvals_needed == 1
    assert "3 restarts of this target in the last hour, budget 3" in step.title


def test_a_budget_of_zero_gates_every_restart() -> None:
    assert restart_step(down_with_restarts(), per_hour=0).requires_approval


def test_the_record_keeps_the_newest_and_survives_a_mangled_annotation() -> None:
    sts: dict[str, Any] = {"metadata": {"name": "redis", "resourceVersion": "7"}}
    ops = plan_record_restart(sts, NOW.isoformat())
    assert ops[-1]["value"] == {RESTART_HISTORY: json.dumps([NOW.isoformat()])}
    sts["metadata"]["annotations"] = {RESTART_HISTORY: "not json"}
    assert restart_history(sts) == []
    ops = plan_record_restart(sts, NOW.isoformat())
    assert ops[-1]["value"] == json.dumps([NOW.isoformat()])
    full = [(NOW - timedelta(minutes=m)).isoformat() for m in range(30, 0, -1)]
    sts["metadata"]["annotations"] = {RESTART_HISTORY: json.dumps([*full, "2026-01-01T00:00"])}
    assert len(restart_history(sts)) == 30  # a naive time cannot be placed: skipped
    kept = json.loads(plan_record_restart(sts, NOW.isoformat())[-1]["value"])
    assert len(kept) == 20 and kept[-1] == NOW.isoformat()


def _recorded(cluster: SandboxCluster) -> list[str]:
    with cluster.api_client() as api:
        sts = client.AppsV1Api(api).read_namespaced_stateful_set("redis", NS)
    assert sts.metadata is not None
    raw = (sts.metadata.annotations or {}).get(RESTART_HISTORY)
    return list(json.loads(raw)) if raw else []


async def test_the_budget_holds_across_incidents_and_workers(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    config = settings_for(
        cluster.redis_url,
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        outage={"ready_timeout": "20s", "poll": "0.5s"},
        limits={"restarts_per_hour": 1},
    )
    await asyncio.to_thread(cluster.fault, "down")
    async with running_worker(temporal_env.client, config):
        first = await start(temporal_env.client, config, incident(cluster), "budget-1")
        report = await first.result()
    assert report.outcome == "resolved", report.escalations
    assert cluster.restarts() == 1 and len(_recorded(cluster)) == 1

    # A new worker and a new incident: the budget is on the StatefulSet, not in either.
    await asyncio.to_thread(cluster.fault, "clear")
    await asyncio.to_thread(cluster.fault, "down")
    async with running_worker(temporal_env.client, config):
        second = await start(temporal_env.client, config, incident(cluster), "budget-2")
        status = await wait_for_pending(second, "restart", within=60)
        step = next(s for s in status.plan if s.name is StepName.RESTART)
        assert "1 restarts of this target in the last hour, budget 1" in step.title
        assert cluster.restarts() == 1  # nothing restarted while it waits
        await second.signal("approve", {"step": "restart", "approver": "alice"})
        report = await second.result()
    assert report.outcome == "resolved", report.escalations
    assert [a.approver for a in report.approvals] == ["alice"]
    assert cluster.restarts() == 2 and len(_recorded(cluster)) == 2
