"""The redis_down path end to end on the sandbox cluster: the official client over HTTP, the
worker's least-privilege Role, real redis-server pods that a restart really restarts. A worker
killed during wait_ready, warm or watch_hit_rate: tests/reliability/."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.incident import IncidentReport
from contracts.steps import StepName
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, settings_for, start, wait_for_pending
from tests.sandbox_checks import api_state, incident, until

WARMER = "sandbox.cache_traffic:warm_catalog"


def settings(cluster: SandboxCluster, **overrides: Any) -> Any:
    overrides.setdefault("outage", {"ready_timeout": "20s", "poll": "0.5s"})
    return settings_for(
        cluster.redis_url, kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)}, **overrides
    )


def steps(report: IncidentReport) -> list[tuple[str, str]]:
    return [(s.name.value, s.status) for s in report.steps]


async def test_killed_redis_is_restarted_once_and_verified(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    await asyncio.to_thread(cluster.fault, "down")
    config = settings(cluster)
    job = incident(cluster)
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, job, "down")
        report = await handle.result()

    assert report.scenario.value == "redis_down"
    assert report.diagnosis.kubernetes is not None
    assert ("restart", "succeeded") in steps(report)
    assert ("wait_ready", "succeeded") in steps(report)
    assert ("force_delete_pod", "skipped") in steps(report)
    assert ("enable_fallback", "skipped") in steps(report)
    assert report.outcome == "resolved", report.escalations
    assert cluster.restarts() == 1
    assert cluster.redis().ping()
    assert report.figures.restarts == 1


async def test_crash_loop_needs_an_approved_force_delete(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    await asyncio.to_thread(cluster.fault, "crashloop")
    config = settings(cluster, outage={"ready_timeout": "3s", "poll": "0.5s"})
    job = incident(cluster)
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, job, "crashloop")
        status = await wait_for_pending(handle, "force_delete_pod", within=60)
        assert "crash loop back off" in " ".join(status.reasons)
        assert not await asyncio.to_thread(_answers, cluster)
        await handle.signal("approve", {"step": "force_delete_pod", "approver": "bob"})
        report = await handle.result()

    assert ("force_delete_pod", "succeeded") in steps(report)
    assert report.outcome == "resolved", report.escalations
    assert cluster.redis().ping()
    inspected = [e.message for e in report.timeline if e.kind == "inspected"]
    assert any("crash_loop_back_off" in m for m in inspected)


def _answers(cluster: SandboxCluster) -> bool:
    try:
        return bool(cluster.redis().ping())
    except Exception:
        return False


async def test_fallback_serves_from_the_database_then_restores_the_api(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    await asyncio.to_thread(cluster.fault, "crashloop")
    assert api_state(cluster) == (3, "true")
    config = settings(
        cluster,
        outage={"ready_timeout": "2s", "fallback_after": "3s", "poll": "0.5s"},
        approvals={"required_for": ["force_delete_pod"], "timeout": "1s"},
        warmers=[{"name": "catalog", "kind": "callable", "target": WARMER}],
        recovery={"watch_interval": "0.5s", "watch_deadline": "30s"},
    )
    job = incident(cluster)
    with CacheTraffic(cluster.redis_port):
        async with running_worker(temporal_env.client, config):
            handle = await start(temporal_env.client, config, job, "fallback")
            await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
            await asyncio.to_thread(cluster.fault, "clear")
            report = await handle.result()

    done = dict(steps(report))
    assert done["force_delete_pod"] == "skipped"  # its approval timed out
    assert done["enable_fallback"] == "succeeded"
    assert done["warm"] == "succeeded"
    assert done["re_enable"] == "succeeded"
    assert done["scale"] == "succeeded"
    assert done["watch_hit_rate"] == "succeeded"
    watch = next(s for s in report.steps if s.name is StepName.WATCH_HIT_RATE)
    assert watch.detail is not None and "reached 60%" in watch.detail
    assert api_state(cluster) == (3, "true")
    assert cluster.redis().ping()
    # Redis came back (verified healthy), but the expired approval stays on record.
    assert report.outcome == "resolved"
    assert report.escalations == ["force_delete_pod was not approved (expired): escalate"]
    kinds = [e.kind for e in report.timeline]
    assert "waiting" in kinds and "approval_timeout" in kinds
    assert report.figures.time_to_mitigate_s is not None  # fallback mitigated it


async def test_abort_mid_fallback_still_restores_the_api(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    await asyncio.to_thread(cluster.fault, "crashloop")
    config = settings(
        cluster,
        outage={"ready_timeout": "2s", "fallback_after": "2s", "poll": "0.5s"},
        approvals={"required_for": ["force_delete_pod"], "timeout": "1s"},
    )
    job = incident(cluster)
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, job, "abort-fallback")
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await handle.signal("abort", {"by": "alice", "reason": "taking over"})
        report = await handle.result()

    assert report.outcome == "aborted"
    assert api_state(cluster) == (3, "true")
    done = dict(steps(report))
    assert done["re_enable"] == "succeeded"
    assert done["scale"] == "succeeded"
    assert done["warm"] == "skipped"
    assert any(e.kind == "abort" and e.actor == "alice" for e in report.timeline)
