"""A worker SIGKILLed during each long step (an approval wait, wait_ready, warm,
watch_hit_rate) loses nothing: a new `runbook worker` process finishes the incident, and every
mutating step took effect exactly once, counted where it lands: Redis's INFO commandstats,
the sandbox API server's audit log (what the runbook's user got committed, and what each
patch wrote), the objects' generations, and the workflow history.

The warm and watch_hit_rate cases are `slow`: a killed worker's attempt is only given up
when its heartbeat timeout (15 s for recovery steps, workflows/incident/retries.py) passes.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.steps import StepName
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    command_calls,
    full_evicting_redis,
    settings_for,
    start,
    target_route,
    wait_for_pending,
)
from tests.reliability.conftest import WorkersFor
from tests.reliability.counting import (
    FALLBACK_AND_BACK,
    activity_runs,
    committed,
    deployment_changes,
    effects,
)
from tests.reliability.incidents import (
    CATALOG,
    TO_FALLBACK,
    api_state,
    generations,
    incident,
    steps,
    until,
    until_heartbeating,
    until_status,
    worker_config,
)
from tests.reliability.processes import kill
from tests.reliability.warm_endpoint import warm_endpoint

# The recovery path's mutating steps, each expected in the history exactly once.
RECOVERY_PATH = ["restart", "enable_fallback", "warm", "re_enable", "scale", "watch_hit_rate"]


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_restarted_once_and_fell_back_once(cluster: SandboxCluster) -> None:
    """The sandbox's view of the fallback path: one rollout restart, no pod deleted (its
    approval expired), the Deployment patched three times (fallback, cache back on, replicas
    back), and nothing else took effect: each generation moved exactly that often."""
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert committed(cluster, "delete", "pods") == []
    assert deployment_changes(cluster) == FALLBACK_AND_BACK
    assert generations(cluster) == (2, 4)
    assert api_state(cluster) == (3, "true")


def polls_since_restart(cluster: SandboxCluster) -> int:
    """The runbook's reads of the StatefulSet after its restart patch: wait_ready's polls."""
    audit = list(cluster.api.audit)
    mine = [r for r in audit if r.user == cluster.runbook_user and r.resource == "statefulsets"]
    patched = [i for i, r in enumerate(mine) if r.verb == "patch" and r.code == 200]
    return len([r for r in mine[patched[0] :] if r.verb == "get"]) if patched else 0


async def test_worker_killed_between_approval_and_flush_flushes_once(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, workers_for: WorkersFor
) -> None:
    """The approval arrives while no worker runs. Exactly once: FLUSHDB, by Redis's own count
    (none before the new worker started, one after), and one `flush` in the history."""
    server = full_evicting_redis(redis_server)
    task_queue = queue("durable")
    workers = workers_for(
        address(temporal_env),
        {
            "temporal": {"task_queue": task_queue},
            "recovery": {"watch_deadline": "1s"},
            "targets": [target_route(server.url)],
        },
    )
    first = workers.spawn()
    handle = await start(temporal_env.client, settings_for(task_queue=task_queue), auto(server.url))
    await wait_for_pending(handle, "flush")

    kill(first)
    await handle.signal("approve", {"step": "flush", "approver": "bob"})
    assert command_calls(server.client(), "flushdb") == 0
    workers.spawn()
    report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert command_calls(server.client(), "flushdb") == 1
    assert server.client().dbsize() == 0
    runs = await activity_runs(handle)
    assert runs.scheduled["flush"] == 1


async def test_worker_killed_during_wait_ready_never_restarts_twice(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster, workers_for: WorkersFor
) -> None:
    """Exactly once: the rollout restart (one committed StatefulSet patch, generation 2, one
    `restart` in the history). wait_ready only reads; its retry on the new worker is the
    point (attempt 2 finishes it)."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    task_queue = queue("wait-ready")
    workers = workers_for(
        address(temporal_env),
        worker_config(cluster, task_queue, outage={"ready_timeout": "60s"}),
    )
    first = workers.spawn()
    handle = await start(
        temporal_env.client, settings_for(task_queue=task_queue), incident(cluster)
    )
    await until_status(
        handle, lambda s: s.current_step is StepName.WAIT_READY, "wait_ready running"
    )
    await until(lambda: polls_since_restart(cluster) >= 2, "wait_ready polling the rollout")
    kill(first)
    await asyncio.to_thread(cluster.fault, "clear")
    workers.spawn()
    report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert ("restart", "succeeded") in steps(report)
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert generations(cluster) == (2, 1)
    assert cluster.restarts() >= 1 and cluster.redis().ping()
    runs = await activity_runs(handle)
    assert runs.scheduled["restart"] == 1
    assert runs.attempts["wait_ready"] == [2]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_worker_killed_during_warm_warms_again_and_changes_the_rest_once(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster, workers_for: WorkersFor
) -> None:
    """Warm is the one step that legitimately runs again: the killed attempt had done the
    catalog's critical pass (50 SETs) and was inside the warm endpoint's critical call; the
    retry does all four passes. So "exactly once" for warm means one completed attempt: the
    endpoint saw critical, critical, all; Redis got 50 + 550 SETs and holds the 500 keys once
    (SET of the same keys is idempotent). Every other change is exactly once."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    task_queue = queue("killed-in-warm")
    with warm_endpoint(hold=1) as endpoint:
        gate = {"name": "gate", "kind": "http", "url": endpoint.url}
        workers = workers_for(
            address(temporal_env),
            worker_config(cluster, task_queue, warmers=[CATALOG, gate], **TO_FALLBACK),
        )
        first = workers.spawn()
        handle = await start(
            temporal_env.client, settings_for(task_queue=task_queue), incident(cluster)
        )
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await asyncio.to_thread(cluster.fault, "clear")
        await until(lambda: endpoint.holding.is_set(), "warm inside the endpoint's call")
        assert command_calls(cluster.redis(), "set") == 50  # the critical pass, done
        kill(first)
        endpoint.release()
        workers.spawn()
        report = await handle.result()

    assert report.outcome == "resolved", (report.escalations, workers.logs()[-3000:])
    assert endpoint.calls == ["critical", "critical", "all"]
    redis = cluster.redis()
    assert command_calls(redis, "set") == 50 + 550
    assert sum(1 for _ in redis.scan_iter("catalog:item:*", count=1000)) == 500
    assert_restarted_once_and_fell_back_once(cluster)
    runs = await activity_runs(handle)
    assert {name: runs.scheduled[name] for name in RECOVERY_PATH} == dict.fromkeys(RECOVERY_PATH, 1)
    assert runs.attempts["warm"] == [2]
    assert dict(steps(report))["warm"] == "succeeded"


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_worker_killed_during_watch_hit_rate_repeats_nothing_before_it(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster, workers_for: WorkersFor
) -> None:
    """watch_hit_rate only reads; the new worker's attempt reports the curve. Exactly once:
    the warm (endpoint called critical then all, 550 SETs, never again: the traffic started
    after it only hits warmed keys, so it sets nothing), the restart, and the three
    Deployment patches."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    task_queue = queue("killed-in-watch")
    with warm_endpoint() as endpoint:
        gate = {"name": "gate", "kind": "http", "url": endpoint.url}
        config = worker_config(
            cluster,
            task_queue,
            warmers=[CATALOG, gate],
            recovery={"watch_interval": "0.5s", "watch_deadline": "30s"},
            **TO_FALLBACK,
        )
        workers = workers_for(address(temporal_env), config)
        first = workers.spawn()
        handle = await start(
            temporal_env.client, settings_for(task_queue=task_queue), incident(cluster)
        )
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await asyncio.to_thread(cluster.fault, "clear")
        await until_heartbeating(handle, "watch_hit_rate")
        kill(first)
        warmed = command_calls(cluster.redis(), "set")
        with CacheTraffic(cluster.redis_port):
            workers.spawn()
            report = await handle.result()

    assert report.outcome == "resolved", (report.escalations, workers.logs()[-3000:])
    assert warmed == 550
    assert command_calls(cluster.redis(), "set") == 550
    assert endpoint.calls == ["critical", "all"]
    assert_restarted_once_and_fell_back_once(cluster)
    runs = await activity_runs(handle)
    assert {name: runs.scheduled[name] for name in RECOVERY_PATH} == dict.fromkeys(RECOVERY_PATH, 1)
    assert runs.attempts["warm"] == [1]
    assert runs.attempts["watch_hit_rate"] == [2]
    watch = next(s for s in report.steps if s.name is StepName.WATCH_HIT_RATE)
    assert watch.detail is not None and "reached 60%" in watch.detail
