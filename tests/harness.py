"""Helpers shared by the integration tests: a worker per test on its own task queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.models import Incident, IncidentReport, Mode, RedisTarget, Scenario
from sandbox import faults
from tests.conftest import RedisFactory
from worker.runner import build_worker
from worker.settings import Settings, TemporalSettings


def settings_for(task_queue: str | None = None, **overrides: object) -> Settings:
    queue = task_queue or f"runbooks-{uuid.uuid4().hex[:8]}"
    return Settings(temporal=TemporalSettings(task_queue=queue), **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        worker = build_worker(client, settings, executor)
        async with worker:
            yield worker


def dry_run(redis_url: str) -> Incident:
    return Incident(
        target=RedisTarget(
            redis_url=redis_url,
            namespace="treebeard-production",
            statefulset="redis",
            api_deployment="treebeard-api",
        ),
        mode=Mode.DRY_RUN,
        requested_by="tests",
    )


async def start(
    client: Client, settings: Settings, incident: Incident
) -> WorkflowHandle[object, IncidentReport]:
    return await client.start_workflow(
        "RedisCacheFailure",
        incident,
        id=f"{incident.target.workflow_id}/{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal.task_queue,
        result_type=IncidentReport,
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
