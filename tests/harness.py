"""Helpers shared by the integration tests: a worker per test on its own task queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import redis
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from contracts.diagnosis import Scenario
from contracts.incident import Incident, IncidentReport, IncidentStatus, Mode
from contracts.steps import StepName
from contracts.target import RedisTarget
from sandbox import faults
from sandbox.processes import RedisProcess
from tests.conftest import RedisFactory
from worker.runner import build_worker
from worker.settings.runbook import Settings, TemporalSettings

# Tests have no traffic unless they bring it: watching the hit rate for the production
# default of 10 minutes would only wait. Tests that watch for real override this.
FAST_RECOVERY = {"watch_interval": "0.2s", "watch_deadline": "1s"}
# make test runs two processes on a two-core machine (a browser, servers): a loopback PING's
# p95 can pass the production 10 ms there, which a verification would call high latency.
# Tests that judge latency set their own threshold.
LOADED_MACHINE = {"ping_p95_ms": 250}


def target_route(redis_url: str, **fields: object) -> dict[str, object]:
    """The `targets:` entry of the target `auto` and `dry_run` make for this URL."""
    return {
        "name": f"tests/{redis_url}",
        "redis_url": redis_url,
        "namespace": "treebeard-production",
        "statefulset": "redis",
        "api_deployment": "treebeard-api",
        **fields,
    }


def settings_for(
    redis_url: str | None = None, *, task_queue: str | None = None, **overrides: object
) -> Settings:
    """A worker on its own task queue, configured for the target of `redis_url` (the worker
    acts on configured targets only)."""
    queue = task_queue or f"runbooks-{uuid.uuid4().hex[:8]}"
    overrides.setdefault("recovery", FAST_RECOVERY)
    thresholds = overrides.get("thresholds", {})
    if isinstance(thresholds, dict):
        overrides["thresholds"] = {**LOADED_MACHINE, **thresholds}
    if redis_url is not None:
        overrides.setdefault("targets", [target_route(redis_url)])
    return Settings(temporal=TemporalSettings(task_queue=queue), **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        worker = build_worker(client, settings, executor)
        async with worker:
            yield worker


def dry_run(redis_url: str, mode: Mode = Mode.DRY_RUN, requested_by: str = "tests") -> Incident:
    return Incident(
        target=RedisTarget(
            redis_url=redis_url,
            namespace="treebeard-production",
            statefulset="redis",
            api_deployment="treebeard-api",
        ),
        mode=mode,
        requested_by=requested_by,
    )


def auto(redis_url: str, requested_by: str = "tests") -> Incident:
    return dry_run(redis_url, Mode.AUTO, requested_by)


async def start(
    client: Client,
    settings: Settings,
    incident: Incident,
    suffix: str | None = None,
    **options: Any,
) -> WorkflowHandle[object, IncidentReport]:
    """Start an incident on the settings' task queue, under the target's id plus `suffix`
    (random by default) so tests sharing the dev server never meet; `options` go to
    start_workflow (start_signal, start_signal_args)."""
    return await client.start_workflow(
        "RedisCacheFailure",
        incident,
        id=f"{incident.target.workflow_id}/{suffix or uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal.task_queue,
        result_type=IncidentReport,
        **options,
    )


def redis_in_state(redis_server: RedisFactory, scenario: Scenario) -> tuple[str, list[object]]:
    """Start a real Redis and put it in the state of `scenario`; returns its URL and what
    must stay alive to keep it there (held connections)."""
    held: list[object] = []
    if scenario is Scenario.OUT_OF_MEMORY:
        server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
        faults.fill_memory(server.client())
    elif scenario is Scenario.TOO_MANY_CONNECTIONS:
        server = redis_server(maxclients="10")
        held += faults.hold_connections(server.port, 9)
    elif scenario is Scenario.SLOW_COMMANDS:
        server = redis_server(**{"enable-debug-command": "yes"})
        faults.slow_commands(server.client(), seconds=0.02)
    else:
        server = redis_server()
        if scenario is Scenario.REDIS_DOWN:
            server.kill()
    return server.url, held


async def wait_for_pending(
    handle: WorkflowHandle[Any, Any], step: str, within: float = 30.0
) -> IncidentStatus:
    """Poll the `status` query until `step` waits for approval."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status: IncidentStatus = await handle.query("status", result_type=IncidentStatus)
        if any(p.step.value == step for p in status.pending_approvals):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{step} never became pending; phase {status.phase}")
        await asyncio.sleep(0.1)


async def until_step(
    handle: WorkflowHandle[Any, Any], step: StepName, status: str, within: float = 30.0
) -> None:
    """Poll the `status` query until the first step of that name has that status."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        plan = (await handle.query("status", result_type=IncidentStatus)).plan
        if any(s.name is step and s.status == status for s in plan):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{step.value} never became {status}")
        await asyncio.sleep(0.1)


def command_calls(client: redis.Redis, command: str) -> int:
    """How often Redis itself says it ran `command` (INFO commandstats, e.g. 'flushdb')."""
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def full_evicting_redis(redis_server: RedisFactory, **config: str) -> RedisProcess:
    """Filled until it refused writes, under a volatile policy with no key holding a TTL: it
    can evict nothing, so it is out of memory for real, and on that path the only gate left
    is the flush (the policy already names an eviction order)."""
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"}, **config)
    client = server.client()
    faults.fill_memory(client)
    client.config_set("maxmemory-policy", "volatile-lru")
    return server
