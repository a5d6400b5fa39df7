"""Approval waits are durable: a timeout is measured by Temporal's clock (time-skipping server,
not by waiting). A worker killed during an approval wait: tests/reliability/."""

from __future__ import annotations

import time

from temporalio.testing import WorkflowEnvironment

from contracts.steps import StepName
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    command_calls,
    full_evicting_redis,
    running_worker,
    settings_for,
    start,
)


async def test_approval_timeout_skips_the_step_and_escalates(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for(server.url)
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
