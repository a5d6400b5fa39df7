"""Alerts that resolve before a destructive step is approved withdraw the request; an abort
stops after the current step. Neither lets the destructive step reach Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.alerts import Alert, AlertStatus
from contracts.decisions import Decision
from contracts.incident import IncidentReport
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

STARTS = datetime.now(UTC) - timedelta(minutes=3)


def alert(fingerprint: str, status: AlertStatus = AlertStatus.FIRING) -> Alert:
    return Alert(
        starts_at=STARTS,
        source="alertmanager",
        name="RedisOutOfConfiguredMaxmemory",
        status=status,
        fingerprint=fingerprint,
        labels={"severity": "warning"},
    )


async def test_every_alert_resolved_withdraws_the_pending_flush(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for(server.url)
    incident = auto(server.url).model_copy(update={"alerts": [alert("a1"), alert("a2")]})
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, incident, "withdraw")
        await wait_for_pending(handle, "flush")
        await handle.signal("alert", alert("a1", AlertStatus.RESOLVED))
        await handle.signal("alert", alert("a1", AlertStatus.RESOLVED))  # a repeat: ignored
        assert (await wait_for_pending(handle, "flush")).pending_approvals
        await handle.signal("alert", alert("a2", AlertStatus.RESOLVED))
        report = await handle.result()

    flush = next(s for s in report.steps if s.name.value == "flush")
    assert flush.status == "skipped"
    assert flush.detail == "approval withdrawn: every alert resolved"
    assert command_calls(server.client(), "flushdb") == 0
    assert report.outcome in ("resolved", "mitigated")
    assert report.steps[-1].status == "succeeded"  # verified all the same
    assert [e.kind for e in report.timeline].count("alert") == 3
    assert {a.status for a in report.alerts} == {AlertStatus.RESOLVED}
    detect = report.figures.time_to_detect_s
    assert detect is not None and 170 < detect < 600


async def test_abort_skips_the_rest_and_refuses_late_approvals(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await temporal_env.client.start_workflow(
            "RedisCacheFailure",
            auto(server.url),
            id="abort-test",
            task_queue=settings.temporal.task_queue,
            result_type=IncidentReport,
        )
        await wait_for_pending(handle, "flush")
        await handle.signal("abort", {"by": "alice", "reason": "taking over by hand"})
        report = await handle.result()
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(
                "decide", Decision.model_validate({"step": "flush", "approver": "bob"})
            )

    assert report.outcome == "aborted"
    assert command_calls(server.client(), "flushdb") == 0
    after = report.steps[[s.name.value for s in report.steps].index("flush") + 1 :]
    assert all(s.status == "skipped" for s in after)
    assert all("aborted by alice" in (s.detail or "") for s in after)
    assert any(e.kind == "abort" and e.actor == "alice" for e in report.timeline)


async def test_refused_decision_after_withdrawal(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for(server.url, approvals={"timeout": "1h"})
    incident = auto(server.url).model_copy(update={"alerts": [alert("only")]})
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, incident, "late")
        await wait_for_pending(handle, "flush")
        await handle.signal("alert", alert("only", AlertStatus.RESOLVED))
        await handle.signal("approve", {"step": "flush", "approver": "bob"})
        report = await handle.result()

    refused = [e.message for e in report.timeline if e.kind == "approval_refused"]
    assert refused == ["flush is already decided: withdrawn"]
    assert command_calls(server.client(), "flushdb") == 0
