"""The demo's incident, from the alert to the report: wait for the webhook to open it, follow
it live (the view of `runbook status --follow`), stop at each approval with the three ways to
give it, and print the review."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime

from rich.console import Console
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from contracts.decisions import Decision, PendingApproval
from contracts.incident import IncidentReport, IncidentStatus
from contracts.steps import StepName
from demo.recovery import RecoveryNotes
from demo.stack import SLACK_URL_ENV, DemoFailure, Processes, Stack
from worker.cli.follow import follow
from worker.client import connect
from worker.settings.runbook import TemporalSettings

Say = Callable[[str], None]


async def latest_run(client: Client, workflow_id: str) -> tuple[str, bool] | None:
    """(run id, running) of the latest run under `workflow_id`, None when there is none."""
    try:
        found = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return None
    return found.run_id, found.status == WorkflowExecutionStatus.RUNNING


async def end_leftover(address: str, workflow_id: str, say: Say) -> None:
    """An incident left running by an earlier demo (its processes gone) would be resumed by
    the new worker against this run's sandbox, and would swallow this run's alert: end it
    before any worker starts."""
    client = await connect_when_healthy(address)
    latest = await latest_run(client, workflow_id)
    if latest is not None and latest[1]:
        await client.get_workflow_handle(workflow_id).terminate(reason="a new make demo started")
        say(f"terminated {workflow_id}, left running by an earlier demo")


async def connect_when_healthy(address: str, within: float = 60.0) -> Client:
    """A dev server listening is not yet serving ("Frontend is not healthy yet" for a few
    seconds on a busy machine): try again until it is, then hand the client on."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await connect(TemporalSettings(address=address))
        except RuntimeError as err:
            if "not healthy" not in str(err) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def wait_for_new_run(
    client: Client, workflow_id: str, before: str | None, processes: Processes, within: float
) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        processes.check()
        latest = await latest_run(client, workflow_id)
        if latest is not None and latest[0] != before:
            return latest[0]
        await asyncio.sleep(0.25)
    raise DemoFailure(
        f"no incident {workflow_id} within {within:.0f}s of the fault: see .runbook/webhook.log "
        "and .runbook/alerting/*.log"
    )


def how_to_approve(stack: Stack, workflow_id: str, run_id: str, p: PendingApproval) -> str:
    """The three ways to give an approval, ready to paste."""
    step = p.step.value
    update = json.dumps({"step": step, "approver": "YOUR-NAME", "decision": "approve"})
    signal = json.dumps({"step": step, "approver": "YOUR-NAME", "comment": "ok"})
    command = f"{stack.runbook()} approve {shlex.quote(workflow_id)} {step} --as YOUR-NAME"
    slack = (
        "press Approve on the approval request the incident posted to your channel"
        if os.environ.get(SLACK_URL_ENV)
        else f"none configured here; with {SLACK_URL_ENV} set, the approval request carries "
        "Approve and Reject buttons"
    )
    return f"""
>>> {step} waits for approval: {p.action}
    because {p.reason}
    approve it in one of three ways:
    1. Temporal Web UI: {stack.link(workflow_id, run_id)}
       "Send an Update": name decide, input {update}
       (or "Send a Signal": name approve, input {signal})
    2. Terminal: {command}
    3. Slack: {slack}
"""


class Narrator:
    """Sees every status of the live view: explains each new approval once, and gives it when
    the demo runs unattended (--approve-as); says once what each recovery step did (the warm
    Job, the hit rate's curve)."""

    def __init__(
        self,
        stack: Stack,
        handle: WorkflowHandle[object, IncidentReport],
        run_id: str,
        console: Console,
        approve_as: str | None,
        notes: RecoveryNotes,
    ) -> None:
        self.stack, self.handle, self.run_id = stack, handle, run_id
        self.console = console
        self.approve_as = approve_as
        self.notes = notes
        self.announced: set[StepName] = set()

    async def __call__(self, status: IncidentStatus) -> None:
        for line in await asyncio.to_thread(self.notes.new_lines, status.plan):
            self.console.print(f"demo: {line}", highlight=False, markup=False, soft_wrap=True)
        for pending in status.pending_approvals:
            if pending.step in self.announced:
                continue
            self.announced.add(pending.step)
            text = how_to_approve(self.stack, self.handle.id, self.run_id, pending)
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)
            if self.approve_as is None:
                self.console.print("demo: waiting for you (Ctrl-C stops everything)")
                continue
            decision = Decision(step=pending.step, approver=self.approve_as, comment="make demo")
            verdict = await self.handle.execute_update("decide", decision, result_type=str)
            self.console.print(f"demo: {verdict} (--approve-as {self.approve_as})")


async def status_of(
    handle: WorkflowHandle[object, IncidentReport], processes: Processes, within: float = 60.0
) -> IncidentStatus:
    """The `status` query, retried while the worker is not answering yet (just started)."""
    deadline = time.monotonic() + within
    while True:
        processes.check()
        try:
            status: IncidentStatus = await handle.query("status", result_type=IncidentStatus)
            return status
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def follow_incident(
    client: Client,
    stack: Stack,
    workflow_id: str,
    run_id: str,
    processes: Processes,
    approve_as: str | None,
    notes: RecoveryNotes,
) -> IncidentReport:
    # The run the alert opened: a later alert (a replica resyncing after a failover) may open
    # another run under the same id once this one has ended, and that one is not this story.
    handle = client.get_workflow_handle(workflow_id, run_id=run_id, result_type=IncidentReport)
    console = Console(highlight=False)
    narrator = Narrator(stack, handle, run_id, console, approve_as, notes)
    await follow(
        workflow_id,
        lambda: status_of(handle, processes),
        lambda: datetime.now(UTC),
        console=console,
        on_status=narrator,
    )
    report: IncidentReport = await handle.result()
    return report
