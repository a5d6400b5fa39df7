"""A master with two replicas under three real Sentinels (quorum 2) on the sandbox cluster:
the runbook waits for Sentinel's failover instead of racing it, forces one only with an
approval, resynchronises a lagging replica without touching the master, and sends a flush
to the master alone. Real redis-server pods and Sentinels, real Temporal, the worker held
to the Role `runbook rbac` makes for the target."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import yaml
from kubernetes import client
from temporalio.testing import WorkflowEnvironment

from contracts.diagnosis import Scenario
from contracts.incident import IncidentReport
from sandbox import faults
from sandbox.cluster import SandboxCluster
from tests.harness import auto, running_worker, settings_for, start, target_route, wait_for_pending
from tests.sandbox_checks import NS, until
from worker.rbac import roles_for
from worker.settings.runbook import Settings

# Fast Sentinels for the cases that wait for a failover; the runbook's own 5 s for the
# others, where a Sentinel starved on a busy machine must not move a healthy master.
# (down-after, failover-timeout) in ms
FAST = (1000, 6000)
PRODUCTION = (5000, 10000)


def route(cluster: SandboxCluster) -> dict[str, object]:
    return target_route(
        cluster.redis_url,
        pods=3,
        sentinel={
            "master_name": cluster.sentinel_master_name,
            "addresses": cluster.sentinel_addresses,
            "master_service": cluster.names.master_service,
        },
    )


def settings(cluster: SandboxCluster, **overrides: Any) -> Settings:
    overrides.setdefault("thresholds", {"vantage_recheck": "1s"})
    overrides.setdefault("outage", {"ready_timeout": "20s", "poll": "0.5s"})
    return settings_for(
        targets=[route(cluster)],
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        **overrides,
    )


@contextmanager
def sentinel_cluster(tmp_path: Path, timings: tuple[int, int] = FAST) -> Iterator[SandboxCluster]:
    """The topology, with the worker held to the Role made for its target (three pods)."""
    role = tmp_path / "role.yaml"
    made = settings_for(targets=[target_route("redis://127.0.0.1:1/0", pods=3)])
    role.write_text(yaml.safe_dump_all(roles_for(made)))
    with SandboxCluster(
        tmp_path / "sentinel",
        sentinel=True,
        role_file=role,
        sentinel_down_after_ms=timings[0],
        sentinel_failover_timeout_ms=timings[1],
    ) as cluster:
        yield cluster


def member(cluster: SandboxCluster, pod: str) -> redis.Redis:
    return redis.Redis(port=cluster.member_port(pod), decode_responses=True, socket_timeout=2)


def role_of(cluster: SandboxCluster, pod: str) -> str:
    try:
        with member(cluster, pod) as conn:
            return str(conn.info("replication")["role"])
    except redis.RedisError:
        return "down"


def flagged_down(cluster: SandboxCluster) -> bool:
    """A Sentinel flags the master it names as subjectively down (the failover's first step)."""
    sentinels = cluster.sentinels
    assert sentinels is not None
    for sentinel in sentinels.running():
        state = sentinel.command("master", cluster.sentinel_master_name)
        if "s_down" in str(state.get("flags", "")):
            return True
    return False


def steps(report: IncidentReport) -> list[tuple[str, str]]:
    return [(s.name.value, s.status) for s in report.steps]


def statefulset_generation(cluster: SandboxCluster) -> int:
    with cluster.api_client() as api:
        sts = client.AppsV1Api(api).read_namespaced_stateful_set("redis", NS)
    assert sts.metadata is not None
    return int(sts.metadata.generation or 0)


async def test_master_killed_waits_for_the_failover_and_rejoins_the_old_master(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with sentinel_cluster(tmp_path) as cluster:
        assert cluster.master_pod() == "redis-0"
        generation = statefulset_generation(cluster)
        config = settings(cluster)
        await asyncio.to_thread(cluster.fault, "master-down")
        await until(lambda: flagged_down(cluster), "Sentinel flags the master down", 10)
        async with running_worker(temporal_env.client, config):
            handle = await start(temporal_env.client, config, auto(cluster.redis_url), "failover")
            report = await handle.result()
        promoted = cluster.master_pod()
        old_role = role_of(cluster, "redis-0")
        generation_after = statefulset_generation(cluster)

    assert report.scenario is Scenario.FAILOVER, report.reasons
    assert "waiting for Sentinel, restarting nothing" in report.reasons[0]
    names = [s.name.value for s in report.steps]
    assert "restart" not in names and "force_delete_pod" not in names
    wait, verify, follows, rejoin = (
        next(s for s in report.steps if s.name.value == name)
        for name in ("wait_failover", "verify_writes", "verify_clients", "restart_replica")
    )
    assert follows.status == "succeeded" and f"points at {promoted}" in (follows.detail or "")
    assert wait.status == "succeeded" and wait.result is not None
    assert wait.result.after["promoted"] == 1
    assert verify.status == "succeeded" and "took a write" in (verify.detail or "")
    assert rejoin.status == "succeeded" and "restarted redis-0" in (rejoin.detail or ""), [
        s.detail for s in report.steps
    ]
    assert wait.finished_at is not None and rejoin.started_at is not None
    assert rejoin.started_at >= wait.finished_at  # nothing restarted while Sentinel worked
    assert report.outcome == "resolved", [s.detail for s in report.steps]
    assert promoted in ("redis-1", "redis-2")
    assert old_role == "slave"  # the old master is back, as a replica
    assert generation_after == generation  # no rollout restart of the StatefulSet


async def test_without_quorum_sentinel_failover_waits_for_a_person(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with sentinel_cluster(tmp_path) as cluster:
        config = settings(cluster)
        await asyncio.to_thread(cluster.fault, "no-quorum")
        await until(lambda: flagged_down(cluster), "the last Sentinel sees the master down", 10)
        async with running_worker(temporal_env.client, config):
            handle = await start(temporal_env.client, config, auto(cluster.redis_url), "quorum")
            try:
                status = await wait_for_pending(handle, "sentinel_failover", within=30)
            except TimeoutError:
                from contracts.incident import IncidentStatus

                st = await handle.query("status", result_type=IncidentStatus)
                print(
                    "DEBUG",
                    st.scenario,
                    st.reasons,
                    [(x.name.value, x.status, x.requires_approval, x.detail) for x in st.plan],
                )
                raise
            assert cluster.master_pod() is None  # nobody promoted a replica on their own
            await handle.signal("approve", {"step": "sentinel_failover", "approver": "bob"})
            report = await handle.result()
        promoted = cluster.master_pod()
        old_role = role_of(cluster, "redis-0")

    assert status.scenario is Scenario.NO_FAILOVER
    assert "cannot fail over" in " ".join(status.reasons)
    assert ("sentinel_failover", "succeeded") in steps(report)
    assert ("wait_failover", "succeeded") in steps(report), [s.detail for s in report.steps]
    assert promoted in ("redis-1", "redis-2")
    assert old_role == "slave"
    # The master is back, but two Sentinels are still down: not "resolved"
    assert report.outcome == "mitigated", report.escalations
    assert report.verification is not None and report.verification.has("sentinel_down")


async def test_a_lagging_replica_is_named_and_resynced_without_touching_the_master(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with sentinel_cluster(tmp_path, PRODUCTION) as cluster:
        config = settings(cluster)
        master = member(cluster, "redis-0")
        run_id = master.info("server")["run_id"]
        await asyncio.to_thread(cluster.fault, "replica-cut-off")
        await until(lambda: _lag(master, cluster.member_port("redis-2")) > 1, "lag past 1 s", 15)
        async with running_worker(temporal_env.client, config):
            handle = await start(temporal_env.client, config, auto(cluster.redis_url), "lag")
            status = await wait_for_pending(handle, "restart_replica", within=30)
            await handle.signal("approve", {"step": "restart_replica", "approver": "bob"})
            report = await handle.result()
        stats = master.info("commandstats")
        still = master.info("server")["run_id"]
        master.close()

    assert status.scenario is Scenario.REPLICA_DEGRADED
    reason = status.reasons[0]
    assert "redis-2" in reason and "lags" in reason and "behind the master" in reason
    acted = [s for s in report.steps if s.name.value not in ("diagnose",)]
    assert [s.name.value for s in acted] == ["restart_replica"]
    assert acted[0].status == "succeeded" and "restarted redis-2" in (acted[0].detail or "")
    assert still == run_id  # the master never restarted
    touched = {"cmdstat_flushdb", "cmdstat_config|set", "cmdstat_replicaof", "cmdstat_shutdown"}
    assert not touched & set(stats), stats
    assert report.outcome == "resolved", [s.detail for s in report.steps]


def _lag(master: redis.Redis, port: int) -> int:
    info = master.info("replication")
    for key, value in info.items():
        if key.startswith("slave") and isinstance(value, dict) and int(value["port"]) == port:
            return int(value.get("lag", 0))
    return 0


async def test_an_out_of_memory_master_is_flushed_alone(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with sentinel_cluster(tmp_path, PRODUCTION) as cluster:
        config = settings(cluster)
        master = member(cluster, "redis-0")
        faults.fill_memory(master)
        master.config_set("maxmemory-policy", "volatile-lru")  # nothing it can evict
        async with running_worker(temporal_env.client, config):
            handle = await start(temporal_env.client, config, auto(cluster.redis_url), "oom")
            await wait_for_pending(handle, "flush", within=30)
            await handle.signal("approve", {"step": "flush", "approver": "bob"})
            report = await handle.result()
        stats = {pod: _flushdb(member(cluster, pod)) for pod in ("redis-0", "redis-1", "redis-2")}

    assert report.scenario is Scenario.OUT_OF_MEMORY
    assert ("flush", "succeeded") in steps(report)
    assert stats["redis-0"]["calls"] == 1  # sent once, to the master
    for pod in ("redis-1", "redis-2"):  # it reached them only in the replication stream
        assert stats[pod]["rejected_calls"] == 0 and stats[pod]["failed_calls"] == 0
        assert stats[pod]["readonly_errors"] == 0  # none was sent one: it would be refused


def _flushdb(conn: redis.Redis) -> dict[str, int]:
    with conn:
        stats = conn.info("commandstats").get("cmdstat_flushdb", {})
        errors = conn.info("errorstats").get("errorstat_READONLY", {})
    return {
        "calls": int(stats.get("calls", 0)),
        "rejected_calls": int(stats.get("rejected_calls", 0)),
        "failed_calls": int(stats.get("failed_calls", 0)),
        "readonly_errors": int(errors.get("count", 0)),
    }
