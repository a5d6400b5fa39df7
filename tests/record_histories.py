"""Re-record the replay corpus in tests/histories/ on purpose:

    make record-histories

Run it only when a workflow change is *meant* to be incompatible with in-flight incidents
(and say so in the commit); otherwise the replay test is what catches the accident.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.models import Decision, IncidentReport, Scenario
from sandbox import faults
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
from worker.settings import Settings

HISTORIES = Path(__file__).parent / "histories"
ROLE = Path(__file__).parent.parent / "deploy" / "k8s" / "rbac" / "role.yaml"
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


async def _sandbox_cases(client: Client, root: Path) -> dict[str, Handle]:
    """The redis_down path on the sandbox cluster: restarted, and crash-loop force-deleted."""
    handles: dict[str, Handle] = {}
    for name, fault, approve in (
        ("auto_redis_down_restarted", "down", False),
        ("auto_redis_crash_loop_force_deleted", "crashloop", True),
    ):
        with SandboxCluster(root / name, role_file=ROLE) as cluster:
            settings = settings_for(
                kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
                outage={"ready_timeout": "3s", "poll": "0.5s"},
            )
            await asyncio.to_thread(cluster.fault, fault)
            async with running_worker(client, settings):
                handle = await start(client, settings, auto(cluster.redis_url))
                if approve:
                    await wait_for_pending(handle, "force_delete_pod", within=60)
                    await handle.signal("approve", {"step": "force_delete_pod", "approver": "bob"})
                await handle.result()
            handles[name] = handle
    return handles


async def record() -> None:
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
                        handles[name] = await case(env.client, settings, factory)
                        await handles[name].result()
                handles.update(await _sandbox_cases(env.client, Path(tmp)))
                for name, handle in handles.items():
                    path = HISTORIES / f"{name}.json"
                    path.write_text((await handle.fetch_history()).to_json())
                    print(f"recorded {path}")
        finally:
            factory.stop_all()


if __name__ == "__main__":
    asyncio.run(record())
