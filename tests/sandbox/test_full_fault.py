"""The sandbox fault `full`: a batch job's keys without a TTL fill Redis until it refuses
writes under an evicting policy (volatile-lru) that has nothing left to evict, the state the
runbook can only fix with a flush; `clear` takes the batch job's keys away and puts the
ConfigMap's policy back. A real redis-server behind the emulated API, and a real incident on
it: out_of_memory, the flush behind its approval, the shipped Job warmer, the hit rate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from temporalio.testing import WorkflowEnvironment

from contracts.diagnosis import Scenario
from contracts.steps import StepName
from demo.stack import shipped_warmers
from sandbox.cache_traffic import CRITICAL, CacheTraffic, key, warm_catalog
from sandbox.cluster import SandboxCluster
from sandbox.kube.faults import Fault
from tests.harness import auto, running_worker, settings_for, start, target_route
from tests.sandbox_checks import ROLE


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    """The runbook's kubeconfig held to the shipped Role (which lets it run the warm Job)."""
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as running:
        yield running


def test_full_refuses_writes_under_an_evicting_policy_until_cleared(
    cluster: SandboxCluster,
) -> None:
    with cluster.redis() as conn:
        warm_catalog(conn, critical_only=True)  # the cache's own keys, each with a TTL

        cluster.fault(Fault.FULL)
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
        memory = conn.info("memory")
        assert memory["used_memory"] >= 0.9 * memory["maxmemory"]
        assert conn.info("stats")["evicted_keys"] >= CRITICAL  # the catalog went first
        assert not conn.exists(key(0))
        assert conn.info("keyspace")["db0"]["expires"] == 0  # nothing left to evict
        for value in ("x" * 1024, "a bit"):  # with a TTL or without: refused
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                conn.set("catalog:item:0", value, ex=600)
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                conn.set("report:today", value)

        cluster.fault(Fault.CLEAR)
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert conn.dbsize() == 0  # only the batch job's keys were left, and they are gone
        assert conn.set("catalog:item:0", "item 0 from the database", ex=600)
        memory = conn.info("memory")
        assert memory["used_memory"] < 0.5 * memory["maxmemory"]


async def test_the_runbook_flushes_a_full_redis_then_its_job_warms_the_cache(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    with cluster.redis() as conn:
        warm_catalog(conn, critical_only=False)
    settings = settings_for(
        targets=[target_route(cluster.redis_url, warmers=shipped_warmers())],
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        recovery={"watch_interval": "0.5s", "watch_deadline": "20s"},
    )
    with CacheTraffic(cluster.redis_port, rate_per_s=25, max_seconds=60):
        cluster.fault(Fault.FULL)
        async with running_worker(temporal_env.client, settings):
            handle = await start(
                temporal_env.client,
                settings,
                auto(cluster.redis_url),
                start_signal="approve",
                start_signal_args=[{"step": "flush", "approver": "bob"}],
            )
            report = await handle.result()

    assert report.scenario is Scenario.OUT_OF_MEMORY, report.reasons
    names = [s.name for s in report.steps]
    assert StepName.SET_EVICTION_POLICY not in names  # volatile-lru evicts: it has no TTLs
    recovery = [StepName.MEMORY_PURGE, StepName.FLUSH, StepName.WARM, StepName.WATCH_HIT_RATE]
    assert [n for n in names if n in recovery] == recovery
    steps = {s.name: s for s in report.steps}
    assert steps[StepName.FLUSH].requires_approval
    assert steps[StepName.FLUSH].status == "succeeded"
    assert steps[StepName.RAISE_MEMORY_LIMIT].status == "skipped"  # the flush was enough
    warm = steps[StepName.WARM]
    assert warm.status == "succeeded", warm.detail
    assert warm.result is not None
    outcome = str(warm.result.after["warm-cache/critical"])
    assert outcome.startswith("job warm-cache-") and "completed" in outcome
    watch = steps[StepName.WATCH_HIT_RATE]
    assert watch.status == "succeeded" and "reached 60%" in str(watch.detail), watch.detail
    assert report.outcome == "resolved", report.escalations
    with cluster.redis() as conn:
        assert conn.get(key(0)) == "item 0 from the database"
