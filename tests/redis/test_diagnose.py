"""diagnose_redis against real redis-server processes driven into each runbook state."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from activities.policy import Thresholds
from activities.redis.diagnosis import diagnose
from activities.targets import RedisAccess
from contracts.diagnosis import Diagnosis, Scenario
from contracts.target import RedisTarget
from sandbox import faults
from sandbox.processes import free_port
from tests.conftest import RedisFactory
from workflows.runbook.classify import classify

ACCESS = RedisAccess()


async def _diagnose(url: str, access: RedisAccess = ACCESS) -> Diagnosis:
    return await diagnose(RedisTarget(redis_url=url), access, ping_samples=5)


async def test_healthy_redis_reads_every_runbook_field(redis_server: RedisFactory) -> None:
    server = redis_server(maxmemory="64mb", **{"maxmemory-policy": "allkeys-lru"})
    client = server.client()
    client.set("user:1", "a")
    client.get("user:1")
    client.get("user:missing")

    d = await _diagnose(server.url)

    assert d.reachable and d.findings == []
    assert d.info is not None
    assert d.info.maxmemory == 64 * 1024 * 1024
    assert d.info.maxmemory_policy == "allkeys-lru"
    assert d.info.keyspace_hits == 1 and d.info.keyspace_misses == 1
    assert d.info.hit_rate == 0.5
    assert d.info.role == "master" and d.info.keys == 1 and d.dbsize == 1
    assert len(d.ping_samples_ms) == 5
    assert d.ping_p50_ms is not None and d.ping_p95_ms is not None
    assert d.ping_p50_ms <= d.ping_p95_ms
    assert classify(d) is Scenario.HEALTHY


async def test_out_of_memory(redis_server: RedisFactory) -> None:
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    faults.fill_memory(server.client())

    d = await _diagnose(server.url)

    assert d.info is not None and d.info.memory_ratio is not None
    assert d.info.memory_ratio >= 0.9
    assert classify(d) is Scenario.OUT_OF_MEMORY


async def test_too_many_connections_near_the_limit(redis_server: RedisFactory) -> None:
    server = redis_server(maxclients="10")
    held = faults.hold_connections(server.port, 9)

    d = await _diagnose(server.url)

    assert d.info is not None and d.info.connected_clients == 10
    assert classify(d) is Scenario.TOO_MANY_CONNECTIONS
    for conn in held:
        conn.close()


async def test_too_many_connections_when_our_own_is_refused(redis_server: RedisFactory) -> None:
    server = redis_server(maxclients="10")
    held = faults.hold_connections(server.port, 10)

    d = await _diagnose(server.url)

    assert not d.reachable and d.has("max_clients_reached"), d.findings
    assert classify(d) is Scenario.TOO_MANY_CONNECTIONS
    for conn in held:
        conn.close()


async def test_slow_commands(redis_server: RedisFactory) -> None:
    server = redis_server(**{"enable-debug-command": "yes"})
    faults.slow_commands(server.client(), seconds=0.03, count=2)

    d = await _diagnose(server.url)

    assert [e.command for e in d.slowlog if e.duration_us >= 30_000] == ["DEBUG SLEEP 0.03"] * 2
    assert classify(d) is Scenario.SLOW_COMMANDS


async def test_failing_persistence_is_high_latency(redis_server: RedisFactory) -> None:
    server = redis_server(**{"enable-protected-configs": "yes"})
    faults.break_persistence(server.client())

    d = await _diagnose(server.url)

    assert d.info is not None and d.info.rdb_last_bgsave_status == "err"
    assert classify(d) is Scenario.HIGH_LATENCY


async def test_killed_redis_is_down_not_an_error(redis_server: RedisFactory) -> None:
    server = redis_server()
    server.kill()

    d = await _diagnose(server.url)

    assert not d.reachable and d.has("connection_refused"), d.findings
    assert classify(d) is Scenario.REDIS_DOWN


async def test_wrong_password_is_a_finding(redis_server: RedisFactory) -> None:
    server = redis_server(requirepass="s3cret")

    without = await _diagnose(server.url)
    wrong = await _diagnose(server.url, RedisAccess(password="nope"))
    right = await _diagnose(server.url, RedisAccess(password="s3cret"))

    assert without.has("auth_failed") and wrong.has("auth_failed")
    assert "s3cret" not in without.model_dump_json() + wrong.model_dump_json()
    assert right.reachable and classify(right) is Scenario.HEALTHY


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that accepts connections and never answers: a hung Redis."""
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        yield port


async def test_hung_redis_times_out_as_a_finding(silent_port: int) -> None:
    access = RedisAccess(connect_timeout=Thresholds().connect_timeout / 4)
    access = access.model_copy(update={"command_timeout": access.connect_timeout})

    d = await _diagnose(f"redis://127.0.0.1:{silent_port}/0", access)

    assert not d.reachable and d.has("timeout")
    assert classify(d) is Scenario.REDIS_DOWN


async def test_target_database_keyspace(redis_server: RedisFactory) -> None:
    server = redis_server()
    db3 = server.client(db=3)
    db3.set("a", 1, ex=60)
    db3.set("b", 1)

    d = await _diagnose(server.url.rsplit("/", 1)[0] + "/3")

    assert d.info is not None and (d.info.keys, d.info.expires) == (2, 1)
    assert d.dbsize == 2


async def test_misconf_refusing_ping_is_persistence_not_down(redis_server: RedisFactory) -> None:
    server = redis_server(**{"enable-protected-configs": "yes", "save": "3600 1"})
    faults.break_persistence(server.client())

    d = await _diagnose(server.url)

    assert d.reachable
    assert d.has("persistence_blocking_writes")
    assert d.ping_p95_ms is None
    assert classify(d) is Scenario.HIGH_LATENCY
