"""A long incident (an alert storm while an approval waits) continues as a new run before its
history grows too long, and loses nothing: alerts, the pending approval, its timeout, the
timeline. The destructive step still runs once."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.models import Alert, IncidentStatus
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


async def test_alert_storm_during_an_approval_continues_as_new(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    settings = settings_for(server.url, limits={"history_events": 150}, approvals={"timeout": "1h"})
    job = auto(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, job, "long")
        first_run = handle.first_execution_run_id
        first = await wait_for_pending(handle, "flush")
        for i in range(120):
            alert = Alert(source="alertmanager", name="RedisMemoryHigh", fingerprint=f"fp-{i}")
            await handle.signal("alert", alert)
        later = await wait_for_pending(handle, "flush")
        await handle.signal("approve", {"step": "flush", "approver": "bob"})
        report = await handle.result()
        status = await handle.query("status", result_type=IncidentStatus)

    old = temporal_env.client.get_workflow_handle(
        job.target.workflow_id + "/long", run_id=first_run
    )
    assert (await old.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert later.pending_approvals[0].since == first.pending_approvals[0].since
    assert report.outcome == "resolved", report.escalations
    assert len(report.alerts) == 120
    assert [(a.step.value, a.approver) for a in report.approvals] == [("flush", "bob")]
    kinds = [e.kind for e in report.timeline]
    assert kinds[0] == "started"
    assert kinds.count("continued") >= 2  # noted when leaving and when picking up
    assert kinds.count("approval_requested") == 1  # the request is not repeated
    assert command_calls(server.client(), "flushdb") == 1
    assert status.phase == "done"
