"""Approval waits are durable: a timeout is measured by Temporal's clock (time-skipping server,
not by waiting), and a worker killed after an approval never runs the step twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.models import StepName
from sandbox.processes import stop_process
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    command_calls,
    full_evicting_redis,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)

RUNBOOK = str(Path(sys.executable).parent / "runbook")


async def test_approval_timeout_skips_the_step_and_escalates(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for()
    began = time.monotonic()
    async with running_worker(time_skipping_env.client, settings):
        handle = await start(time_skipping_env.client, settings, auto(server.url))
        report = await handle.result()

    assert time.monotonic() - began < 60
    flush = next(s for s in report.steps if s.name is StepName.FLUSH)
    assert flush.status == "skipped"
    assert flush.detail == "not approved (expired)"
    assert report.outcome == "escalated"
    assert (report.finished_at - report.started_at).total_seconds() >= 15 * 60
    assert any(e.kind == "approval_timeout" for e in report.timeline)
    assert server.client().dbsize() > 1000  # evictions may trim it, nothing flushed it
    assert command_calls(server.client(), "flushdb") == 0


@pytest.fixture
def worker_env(temporal_env: WorkflowEnvironment) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RUNBOOK_CONFIG", None)
    env["RUNBOOK_RECOVERY__WATCH_DEADLINE"] = "1s"
    env["TEMPORAL_ADDRESS"] = temporal_env.client.service_client.config.target_host
    env["RUNBOOK_TEMPORAL__TASK_QUEUE"] = f"durable-{uuid.uuid4().hex[:8]}"
    return env


@pytest.fixture
def spawn_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        proc = subprocess.Popen([RUNBOOK, "worker"], env=worker_env, stdout=log, stderr=log)
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        stop_process(proc)


async def test_worker_killed_between_approval_and_flush_flushes_once(
    temporal_env: WorkflowEnvironment,
    redis_server: RedisFactory,
    worker_env: dict[str, str],
    spawn_worker: object,
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for(task_queue=worker_env["RUNBOOK_TEMPORAL__TASK_QUEUE"])
    first = spawn_worker()  # type: ignore[operator]
    handle = await start(temporal_env.client, settings, auto(server.url))
    await wait_for_pending(handle, "flush")

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    await handle.signal("approve", {"step": "flush", "approver": "bob"})
    assert command_calls(server.client(), "flushdb") == 0
    spawn_worker()  # type: ignore[operator]
    report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert command_calls(server.client(), "flushdb") == 1
    assert server.client().dbsize() == 0
