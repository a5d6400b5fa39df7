"""Secrets never travel in workflow input or history: the worker holds them."""

from __future__ import annotations

import logging

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import RedisFactory
from tests.harness import auto, full_evicting_redis, running_worker, settings_for, start

SECRET = "s3cret-4d1f-redis-password"


async def test_redis_password_is_in_no_history_and_no_log(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = full_evicting_redis(redis_server, requirepass=SECRET)
    settings = settings_for(redis_password=SECRET, approvals={"required_for": []})
    caplog.set_level(logging.DEBUG)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations  # it did reach Redis
    assert report.diagnosis.reachable
    history = (await handle.fetch_history()).to_json()
    assert SECRET not in history
    assert SECRET not in caplog.text
    assert SECRET not in report.model_dump_json()
