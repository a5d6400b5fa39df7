"""The Temporal worker: every workflow and activity of the runbook on one task queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.policy import PolicyActivities
from activities.redis_diagnosis import RedisDiagnosisActivities
from worker.settings import Settings
from workflows.incident import RedisCacheFailure

log = logging.getLogger("runbook.worker")


def activities_for(settings: Settings) -> Sequence[Any]:
    """Bind every activity to the worker's settings; secrets stay in this process."""
    redis = RedisDiagnosisActivities(settings.redis_access, settings.thresholds.ping_samples)
    policy = PolicyActivities(settings.policy)
    return [redis.diagnose_redis, policy.current_policy]


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=[RedisCacheFailure],
        activities=activities_for(settings),
        activity_executor=executor,
    )


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set, then finish in-flight activity attempts and exit."""
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="activity") as executor:
        worker = build_worker(client, settings, executor)
        log.info(
            "worker polling task queue %r on %s (namespace %s)",
            settings.temporal.task_queue,
            settings.temporal.address,
            settings.temporal.namespace,
        )
        async with worker:
            await stop.wait()
