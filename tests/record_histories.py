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

from contracts.alerts import Alert
from contracts.decisions import Decision
from contracts.diagnosis import Scenario
from contracts.incident import Incident, IncidentReport
from sandbox import faults
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from sandbox.processes import binary
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    dry_run,
    full_evicting_redis,
    redis_in_state,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from tests.sandbox_checks import ROLE, api_state, fallback_settings, until
from worker.settings.runbook import Settings

HISTORIES = Path(__file__).parent / "histories"
Handle = WorkflowHandle[object, IncidentReport]
Case = Callable[[Client, RedisFactory], Awaitable[Handle]]
Drive = Callable[[Handle], Awaitable[None]]


async def _finished(c: Client, incident: Incident, drive: Drive | None = None) -> Handle:
    """Run one incident to its end on a worker configured for its target."""
    settings = settings_for(incident.target.redis_url)
    async with running_worker(c, settings):
        handle = await start(c, settings, incident)
        if drive is not None:
            await drive(handle)
        await handle.result()
    return handle


async def _dry(scenario: Scenario, c: Client, f: RedisFactory) -> Handle:
    url, _held = redis_in_state(f, scenario)
    return await _finished(c, dry_run(url))


async def _oom(c: Client, f: RedisFactory, flush: str) -> Handle:
    server = f(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    faults.fill_memory(server.client())

    async def decide(handle: Handle) -> None:
        await wait_for_pending(handle, "set_eviction_policy")
        decision = {"step": "set_eviction_policy", "approver": "bob"}
        await handle.execute_update("decide", Decision.model_validate(decision))
        await wait_for_pending(handle, "flush")
        await handle.signal(flush, {"step": "flush", "approver": "carol"})

    return await _finished(c, auto(server.url), decide)


async def _connections(c: Client, f: RedisFactory) -> Handle:
    url, _held = redis_in_state(f, Scenario.TOO_MANY_CONNECTIONS)
    return await _finished(c, auto(url))


async def _auto_down(c: Client, f: RedisFactory) -> Handle:
    url, _ = redis_in_state(f, Scenario.REDIS_DOWN)
    return await _finished(c, auto(url))


async def _continued(c: Client, f: RedisFactory, run: str) -> Handle:
    """An alert storm while the flush waits for approval: the history passes its limit and
    the incident continues as new, carrying its memory; the flush is approved in the new run.
    `run` picks which run's history is kept: the first (it hands over) or the last (it
    continues from the carried memory)."""
    server = full_evicting_redis(f)
    settings = settings_for(server.url, limits={"history_events": 150}, approvals={"timeout": "1h"})
    async with running_worker(c, settings):
        handle = await start(c, settings, auto(server.url))
        await wait_for_pending(handle, "flush")
        for i in range(120):
            alert = Alert(source="alertmanager", name="RedisMemoryHigh", fingerprint=f"fp-{i}")
            await handle.signal("alert", alert)
        await wait_for_pending(handle, "flush")
        await handle.signal("approve", {"step": "flush", "approver": "bob"})
        await handle.result()
    run_id = handle.first_execution_run_id if run == "first" else None
    return c.get_workflow_handle(handle.id, run_id=run_id, result_type=IncidentReport)


CASES: dict[str, Case] = {
    "dry_run_healthy": lambda c, f: _dry(Scenario.HEALTHY, c, f),
    "dry_run_out_of_memory": lambda c, f: _dry(Scenario.OUT_OF_MEMORY, c, f),
    "dry_run_redis_down": lambda c, f: _dry(Scenario.REDIS_DOWN, c, f),
    "auto_out_of_memory_approved": lambda c, f: _oom(c, f, "approve"),
    "auto_out_of_memory_flush_rejected": lambda c, f: _oom(c, f, "reject"),
    "auto_redis_down_without_kubernetes": _auto_down,
    "auto_too_many_connections": _connections,
    "auto_out_of_memory_continued_as_new_first_run": lambda c, f: _continued(c, f, "first"),
    "auto_out_of_memory_continued_as_new_last_run": lambda c, f: _continued(c, f, "last"),
}


SandboxCase = Callable[[Client, SandboxCluster], Awaitable[Handle]]


def _sandbox_settings(cluster: SandboxCluster, **overrides: Any) -> Settings:
    overrides.setdefault("outage", {"ready_timeout": "3s", "poll": "0.5s"})
    return settings_for(
        cluster.redis_url, kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)}, **overrides
    )


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
                handles: dict[str, Handle] = {}
                for name, case in CASES.items():
                    if only and name not in only:
                        continue
                    handles[name] = await case(env.client, factory)
                handles.update(await _sandbox_cases(env.client, Path(tmp), only))
                for name, handle in handles.items():
                    path = HISTORIES / f"{name}.json"
                    path.write_text((await handle.fetch_history()).to_json())
                    print(f"recorded {path}")
        finally:
            factory.stop_all()


if __name__ == "__main__":
    asyncio.run(record(set(sys.argv[1:])))
