"""A Sentinel-managed target's changes, made by the activities themselves against three real
redis-server pods and three real Sentinels: CONFIG SET on every member (a failover keeps it),
and a flush that reaches the master even when the target's URL names a replica."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from temporalio.testing import ActivityEnvironment

from activities.redis.remediation import RedisRemediationActivities
from activities.targets import ConfiguredTarget, RedisAccess, SentinelGroup, TargetBook
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster
from tests.harness import command_calls

PODS = ("redis-0", "redis-1", "redis-2")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path / "sandbox", sentinel=True) as cluster:
        yield cluster


def book(cluster: SandboxCluster, url: str) -> tuple[TargetBook, RedisTarget]:
    sentinel = SentinelGroup(
        master_name=cluster.sentinel_master_name,
        addresses=tuple(
            (host, int(port))
            for host, _, port in (a.rpartition(":") for a in cluster.sentinel_addresses)
        ),
    )
    target = RedisTarget(redis_url=url, namespace="treebeard-production", statefulset="redis")
    configured = ConfiguredTarget(
        name="group", target=target, access=RedisAccess(sentinel=sentinel)
    )
    return TargetBook([configured]), target


def member(cluster: SandboxCluster, pod: str) -> redis.Redis:
    return redis.Redis(port=cluster.member_port(pod), decode_responses=True, socket_timeout=2)


async def test_config_set_reaches_every_member_and_survives_a_failover(
    group: SandboxCluster,
) -> None:
    targets, target = book(group, group.redis_url)
    fix = RedisRemediationActivities(targets)
    result = await ActivityEnvironment().run(fix.set_eviction_policy, target, "allkeys-lru")
    assert result.changed and "on the replicas" in result.summary
    for pod in PODS:
        with member(group, pod) as conn:
            assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru", pod
    assert group.sentinels is not None
    await asyncio.to_thread(group.sentinels.failover)
    deadline = asyncio.get_running_loop().time() + 30
    while group.master_pod() in (None, "redis-0"):
        assert asyncio.get_running_loop().time() < deadline, "no failover"
        await asyncio.sleep(0.2)
    promoted = group.master_pod()
    assert promoted is not None
    with member(group, promoted) as conn:
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"


async def test_a_flush_goes_to_the_master_even_when_the_url_names_a_replica(
    group: SandboxCluster,
) -> None:
    with member(group, "redis-0") as master:
        master.set("cache:item:1", "x")
    replica_url = f"redis://127.0.0.1:{group.member_port('redis-1')}/0"
    targets, target = book(group, replica_url)
    fix = RedisRemediationActivities(targets)
    result = await ActivityEnvironment().run(fix.flush, target, "", -1)
    assert result.summary.startswith("FLUSHDB db0")
    with member(group, "redis-0") as master:
        assert command_calls(master, "flushdb") == 1
        assert master.dbsize() == 0
    for pod in ("redis-1", "redis-2"):
        with member(group, pod) as conn:
            stats = conn.info("commandstats").get("cmdstat_flushdb", {})  # replicated only
            assert int(stats.get("rejected_calls", 0)) == int(stats.get("failed_calls", 0)) == 0
            assert "errorstat_READONLY" not in conn.info("errorstats")
