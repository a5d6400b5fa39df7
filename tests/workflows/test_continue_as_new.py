"""A long incident (an alert storm while an approval waits) continues as a new run before its
history grows too long, and loses nothing: alerts, the pending approval, its timeout, the
timeline. The destructive step still runs once."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.alerts import Alert
from contracts.incident import IncidentReport, IncidentStatus
from sandbox import faults
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


async def _approve_until_done(handle: WorkflowHandle[Any, IncidentReport]) -> IncidentReport:
    """Approve whatever waits (as bob) until the incident ends."""
    while True:
        status = await handle.query("status", result_type=IncidentStatus)
        if status.phase == "done":
            return await handle.result()
        for pending in status.pending_approvals:
            await handle.signal("approve", {"step": pending.step.value, "approver": "bob"})
        await asyncio.sleep(0.2)


async def test_five_thousand_distinct_alerts_stay_bounded_and_counted(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """What an incident carries is bounded: one entry per fingerprint's status, the first
    alerts whole, the timeline's head and tail; the counts in the report are exact."""
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    faults.fill_memory(server.client())
    settings = settings_for(
        server.url, limits={"history_events": 2000}, approvals={"timeout": "1h"}
    )
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url), "storm")
        first_run = handle.first_execution_run_id
        await wait_for_pending(handle, "set_eviction_policy")
        sent = [
            Alert(source="alertmanager", name=f"RedisAlert{i % 7}", fingerprint=f"fp-{i:05d}",
                  labels={"instance": f"redis-{i}:9121", "severity": "warning"},
                  annotations={"summary": "x" * 120})
            for i in range(5000)
        ]  # fmt: skip
        for batch in range(0, len(sent), 100):
            await asyncio.gather(*(handle.signal("alert", a) for a in sent[batch : batch + 100]))
        await handle.signal("alert", sent[0])  # a repeat: counted, not a new alert
        report = await asyncio.wait_for(_approve_until_done(handle), timeout=120)

    runs = [e async for e in temporal_env.client.list_workflows(f"WorkflowId='{handle.id}'")]
    assert len(runs) >= 2 and any(r.run_id == first_run for r in runs)
    assert report.outcome in ("resolved", "mitigated"), report.escalations
    summary = report.alert_summary
    assert (summary.distinct, summary.firing, summary.resolved) == (5000, 5000, 0)
    assert summary.deliveries == 5001 and summary.untracked == 0
    assert len(report.alerts) == summary.shown == 200
    assert all(int(a.fingerprint[3:]) < 200 for a in report.alerts)  # the first to arrive
    kinds = [e.kind for e in report.timeline]
    assert kinds[0] == "started" and kinds.count("omitted") == 1 and len(kinds) <= 301
    omitted = next(e for e in report.timeline if e.kind == "omitted")
    assert int(omitted.message.split()[0]) > 4500
    assert "finished" in kinds[-5:]  # the tail is the latest
    largest = 0
    async for run in temporal_env.client.list_workflows(f"WorkflowId='{handle.id}'"):
        history = await temporal_env.client.get_workflow_handle(
            handle.id, run_id=run.run_id
        ).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        largest = max(largest, sum(len(p.data) for p in started.input.payloads))
    assert largest < 512 * 1024, f"a run started with {largest} bytes of input"
