"""Redis flapping during recovery, for real on the sandbox: it crashes again right after the
API got its cache back. The workflow notices, serves from the database again, recovers again,
and restarts nothing twice."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.steps import StepName
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, start
from tests.sandbox_checks import api_state, fallback_settings, incident, until


@pytest.mark.parametrize("seen", ["before_the_scale_back", "after_the_scale_back"])
async def test_redis_down_again_after_re_enable_goes_back_to_fallback(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster, seen: str
) -> None:
    config = fallback_settings(cluster)
    await asyncio.to_thread(cluster.fault, "crashloop")
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, incident(cluster), "flap")
        await until(lambda: api_state(cluster) == (8, "false"), "the first fallback")
        if seen == "before_the_scale_back":
            # re_enable's reply is held (its patch is done at once): Redis goes down while
            # the workflow waits for it, so the flap is seen at the scale step's condition.
            cluster.api.failures.add(verb="patch", resource="deployments", reply_delay=4)
            await asyncio.to_thread(cluster.fault, "clear")
            await until(lambda: api_state(cluster)[1] == "true", "the cache re-enabled")
        else:
            await asyncio.to_thread(cluster.fault, "clear")
            await until(lambda: api_state(cluster) == (3, "true"), "the API restored")
        await asyncio.to_thread(cluster.fault, "crashloop")  # and down it goes again
        await until(lambda: api_state(cluster) == (8, "false"), "the second fallback")
        await asyncio.to_thread(cluster.fault, "clear")
        with CacheTraffic(cluster.redis_port):
            report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    names = [s.name for s in report.steps if s.status == "succeeded"]
    assert names.count(StepName.ENABLE_FALLBACK) == 2
    assert names.count(StepName.RE_ENABLE) == 2
    assert names.count(StepName.SCALE) == (1 if seen == "before_the_scale_back" else 2)
    assert names.count(StepName.RESTART) == 1  # the flap itself restarts nothing
    assert [e.kind for e in report.timeline].count("flap") == 1
    # Back to the replicas from before the first fallback, not the fallback's 8.
    assert api_state(cluster) == (3, "true")
    assert cluster.redis().ping()
    assert report.approvals == []  # the fallback needed none: none asked twice


async def test_past_max_flaps_the_api_stays_on_the_database_for_a_person(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    config = fallback_settings(cluster, max_flaps=0)
    await asyncio.to_thread(cluster.fault, "crashloop")
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, incident(cluster), "flaps-spent")
        await until(lambda: api_state(cluster) == (8, "false"), "the first fallback")
        await asyncio.to_thread(cluster.fault, "clear")
        await until(lambda: api_state(cluster) == (3, "true"), "the API restored")
        await asyncio.to_thread(cluster.fault, "crashloop")
        report = await handle.result()

    assert report.outcome == "escalated"
    assert api_state(cluster) == (8, "false")  # safe: on the database, not on a dead cache
    names = [s.name for s in report.steps if s.status == "succeeded"]
    assert names.count(StepName.ENABLE_FALLBACK) == 2 and names.count(StepName.RE_ENABLE) == 1
    assert any("max_flaps is 0" in p and "3 replicas" in p for p in report.escalations)
