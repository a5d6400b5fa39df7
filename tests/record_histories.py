"""Re-record the replay corpus in tests/histories/ on purpose:

    make record-histories                      # every case
    make record-histories CASES="name ..."     # only these (names: the files' stems)

Run it only when a workflow change is *meant* to be incompatible with in-flight incidents
(and say so in the commit); otherwise the replay test is what catches the accident.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.models import Decision, IncidentReport, Scenario
from sandbox import faults
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from sandbox.processes import binary
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    dry_run,
    redis_in_state,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from tests.sandbox_checks import ROLE, api_state, fallback_settings, until
from worker.settings import Settings

HISTORIES = Path(__file__).parent / "histories"
Handle = WorkflowHandle[object, IncidentReport]
Case = Callable[[Client, Settings, RedisFactory], Awaitable[Handle]]


async def _dry(scenario: Scenario, c: Client, s: Settings, f: RedisFactory) -> Handle:
    url, _held = redis_in_state(f, scenario)
    return await start(c, s, dry_run(url))


async def _oom(c: Client, s: Settings, f: RedisFactory, flush: str) -> Handle:
    server = f(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    faults.fill_memory(server.client())
    handle = await start(c, s, auto(server.url))
    await wait_for_pending(handle, "set_eviction_policy")
    decision = {"step": "set_eviction_policy", "approver": "bob"}
    await handle.execute_update("decide", Decision.model_validate(decision))
    await wait_for_pending(handle, "flush")
    await handle.signal(flush, {"step": "flush", "approver": "carol"})
    return handle


async def _connections(c: Client, s: Settings, f: RedisFactory) -> Handle:
    url, _held = redis_in_state(f, Scenario.TOO_MANY_CONNECTIONS)
    handle = await start(c, s, auto(url))
    await handle.result()
    return handle


CASES: dict[str, Case] = {
    "dry_run_healthy": lambda c, s, f: _dry(Scenario.HEALTHY, c, s, f),
    "dry_run_out_of_memory": lambda c, s, f: _dry(Scenario.OUT_OF_MEMORY, c, s, f),
    "dry_run_redis_down": lambda c, s, f: _dry(Scenario.REDIS_DOWN, c, s, f),
    "auto_out_of_memory_approved": lambda c, s, f: _oom(c, s, f, "approve"),
    "auto_out_of_memory_flush_rejected": lambda c, s, f: _oom(c, s, f, "reject"),
    "auto_redis_down_without_kubernetes": lambda c, s, f: _auto_down(c, s, f),
    "auto_too_many_connections": _connections,
}


async def _auto_down(c: Client, s: Settings, f: RedisFactory) -> Handle:
    url, _ = redis_in_state(f, Scenario.REDIS_DOWN)
    return await start(c, s, auto(url))


SandboxCase = Callable[[Client, SandboxCluster], Awaitable[Handle]]


def _sandbox_settings(cluster: SandboxCluster, **overrides: Any) -> Settings:
    overrides.setdefault("outage", {"ready_timeout": "3s", "poll": "0.5s"})
    return settings_for(kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)}, **overrides)


async def _down(
    c: Client, cluster: SandboxCluster, fault: str, approve: str | None = None, **overrides: Any
) -> Handle:
    """Redis down on the sandbox; with `approve`, that step waits for bob's approval."""
    settings = _sandbox_settings(cluster, **overrides)
    await asyncio.to_thread(cluster.fault, fault)
    async with running_worker(c, settings):
        handle = await start(c, settings, auto(cluster.redis_url))
        if approve:
            await wait_for_pending(handle, approve, within=60)
            await handle.signal("approve", {"step": approve, "approver": "bob"})
        await handle.result()
    return handle


async def _fallback(c: Client, cluster: SandboxCluster, flap: bool) -> Handle:
    """Past the fallback deadline: serve from the database, recover; with `flap`, Redis
    crashes again right after the cache is re-enabled and the workflow goes round again."""
    settings = fallback_settings(cluster)
    await asyncio.to_thread(cluster.fault, "crashloop")
    async with running_worker(c, settings):
        handle = await start(c, settings, auto(cluster.redis_url))
        await until(lambda: api_state(cluster) == (8, "false"), "the fallback")
        await asyncio.to_thread(cluster.fault, "clear")
        if flap:
            await until(lambda: api_state(cluster)[1] == "true", "the cache re-enabled")
            await asyncio.to_thread(cluster.fault, "crashloop")
            await until(lambda: api_state(cluster) == (8, "false"), "the second fallback")
            await asyncio.to_thread(cluster.fault, "clear")
        with CacheTraffic(cluster.redis_port):
            await handle.result()
    return handle


SANDBOX_CASES: dict[str, SandboxCase] = {
    "auto_redis_down_restarted": lambda c, k: _down(c, k, "down"),
    "auto_redis_crash_loop_force_deleted": lambda c, k: _down(
        c, k, "crashloop", approve="force_delete_pod"
    ),
    "auto_redis_down_fallback_recovered": lambda c, k: _fallback(c, k, flap=False),
    "auto_redis_down_flapped_back_to_fallback": lambda c, k: _fallback(c, k, flap=True),
    # A restart budget of 0: the restart waits for approval, which is given.
    "auto_redis_down_restart_over_budget_approved": lambda c, k: _down(
        c, k, "down", approve="restart", limits={"restarts_per_hour": 0}
    ),
}


async def _sandbox_cases(client: Client, root: Path, only: set[str]) -> dict[str, Handle]:
    """The redis_down path on the sandbox cluster, one fresh cluster per case."""
    handles: dict[str, Handle] = {}
    for name, case in SANDBOX_CASES.items():
        if only and name not in only:
            continue
        with SandboxCluster(root / name, role_file=ROLE) as cluster:
            handles[name] = await case(client, cluster)
    return handles


async def record(only: set[str]) -> None:
    """Record every case, or only the named ones (the others keep their files)."""
    unknown = only - set(CASES) - set(SANDBOX_CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; known: {sorted(CASES)} "
                         f"{sorted(SANDBOX_CASES)}")  # fmt: skip
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", [Path(sys.executable).parent]),
        data_converter=pydantic_data_converter,
    )
    with tempfile.TemporaryDirectory() as tmp:
        factory = RedisFactory(Path(tmp))
        try:
            async with env:
                settings = settings_for()
                handles: dict[str, Handle] = {}
                async with running_worker(env.client, settings):
                    for name, case in CASES.items():
                        if only and name not in only:
                            continue
                        handles[name] = await case(env.client, settings, factory)
                        await handles[name].result()
                handles.update(await _sandbox_cases(env.client, Path(tmp), only))
                for name, handle in handles.items():
                    path = HISTORIES / f"{name}.json"
                    path.write_text((await handle.fetch_history()).to_json())
                    print(f"recorded {path}")
        finally:
            factory.stop_all()


if __name__ == "__main__":
    asyncio.run(record(set(sys.argv[1:])))
