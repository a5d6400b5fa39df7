"""Escalations and status updates arrive at the right workflow times (time-skipping server),
with the template filled; a channel that is down never holds back a remediation step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from sandbox import faults
from sandbox.processes import free_port
from tests.conftest import RedisFactory
from tests.harness import auto, full_evicting_redis, running_worker, settings_for, start
from tests.http_receiver import http_receiver
from workflows.runbook.messages import notification

MINUTE = 60.0


async def test_escalations_and_status_updates_on_the_runbook_cadence(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    with http_receiver() as hook:
        settings = settings_for(
            server.url,
            approvals={"timeout": "45m"},
            notifications={"channels": [{"name": "ops", "kind": "webhook", "url": hook.url}]},
        )
        async with running_worker(time_skipping_env.client, settings):
            handle = await start(time_skipping_env.client, settings, auto(server.url))
            report = await handle.result()

    def minutes(kind: str) -> list[float]:
        return [
            round(
                (datetime.fromisoformat(b["sent_at"]) - report.started_at).total_seconds() / MINUTE,
                1,
            )
            for b in hook.bodies
            if b["kind"] == kind
        ]

    assert minutes("escalation") == [5.0, 15.0, 30.0]
    assert minutes("status_update") == [10.0, 20.0, 30.0, 40.0]
    assert minutes("approval_request") == [0.0]
    assert minutes("final") == [45.0]
    escalations = [b for b in hook.bodies if b["kind"] == "escalation"]
    assert escalations[0]["recipients"] == ["on-call escalation"]
    assert "maintenance mode" in escalations[2]["title"]
    update = next(b for b in hook.bodies if b["kind"] == "status_update")
    assert update["status"] == "Resolving"
    assert update["severity"] == "critical"
    assert "Cache refusing writes" in update["impact"]
    assert update["current_actions"].startswith("waiting for approval of flush")
    assert update["estimated_resolution"].startswith("after approval")
    due = report.started_at + timedelta(minutes=20)  # the first update went out at 10
    assert update["next_update"] == f"every 10 minutes; the next by {due:%H:%M} UTC"
    final = next(b for b in hook.bodies if b["kind"] == "final")
    assert final["status"] == "Escalated"
    assert final["next_update"] == "none: this is the last update"
    assert report.outcome == "escalated"
    kinds = [e.kind for e in report.timeline]
    assert kinds.count("escalation") == 3
    assert kinds.count("notified") == len(hook.bodies)


async def test_a_channel_that_is_down_does_not_delay_remediation(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(maxclients="10")
    held = faults.hold_connections(server.port, 9)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    settings = settings_for(
        server.url,
        limits={"maxclients_ceiling": 500},
        communication={"status_every": "1s", "notify_timeout": "3s"},
        notifications={"channels": [{"name": "down", "kind": "slack", "url": dead}]},
    )
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    raised = next(s for s in report.steps if s.name.value == "raise_maxclients")
    assert raised.started_at is not None and raised.finished_at is not None
    assert raised.finished_at - report.started_at < timedelta(seconds=3)
    failed = [e for e in report.timeline if e.kind == "notification_failed"]
    assert failed, "the final notification to the dead channel must be reported as failed"
    assert report.finished_at - report.started_at < timedelta(seconds=8)
    for conn in held:
        conn.close()


def test_template_fields_are_filled_before_any_scenario() -> None:
    at = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    n = notification(
        workflow_id="w",
        kind="status_update",
        title="t",
        started=at,
        now=at,
        phase="triage",
        outcome=None,
        scenario=None,
        plan=[],
        pending=[],
        alerts=[],
        severity="critical",
        approval_timeout=timedelta(minutes=15),
    )
    assert n.status == "Investigating"
    assert n.impact == "Under investigation"
    assert n.estimated_resolution == "now"
    assert "Status: Investigating" in n.as_text()
    assert n.next_update == "when something changes"  # no cadence given
