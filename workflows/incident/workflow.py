"""The RedisCacheFailure workflow: one durable incident per Redis target.

Triage (diagnose, classify, plan, gather evidence); in dry-run mode report the plan and touch
nothing; in auto mode run the plan step by step, every destructive step behind the approval
gate, then verify with a fresh diagnosis and report.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.alerts import Alert, AlertStatus
    from contracts.decisions import Abort, Decision, Refusal
    from contracts.diagnosis import Scenario
    from contracts.incident import (
        WORKFLOW_TYPE,
        Incident,
        IncidentReport,
        IncidentStatus,
        Mode,
    )
    from contracts.steps import StepName
    from workflows.incident.carry import Carry
    from workflows.incident.communication import Communication
    from workflows.incident.errors import ContinueAsNew
    from workflows.incident.execution import Execution
    from workflows.incident.gate import ApprovalGate
    from workflows.incident.maintenance import PATCH_MAINTENANCE, Maintenance
    from workflows.incident.metrics import IncidentMetrics
    from workflows.incident.payloads import Malformed, parse
    from workflows.incident.probes import PATCH_LOCAL_READS, Probes
    from workflows.incident.report import outcome_of, report_of, scenario_of
    from workflows.incident.triage import Triage
    from workflows.runbook.approvals import plan_digest

DECISION_HINT = '{"step": "flush", "approver": "your-name", "comment": "why"}'
SIGNAL_NOTE = (
    "step: the pending one (query status), e.g. flush, restart, force_delete_pod, "
    "set_eviction_policy, raise_memory_limit, tune_persistence; approver is required. A signal "
    "gets no answer: a refused or malformed one is only noted in the timeline. The update "
    "`decide` answers with the verdict."
)
# Corroborated "down" and the judgement rules (workflows/runbook/classify.py): older
# histories replay with the rules they were recorded under.
PATCH_JUDGEMENT = "judgement-corroborated"


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class RedisCacheFailure:
    """A bad input (ValidationError while decoding) fails the workflow instead of retrying its
    first task forever: people start this by hand with `temporal workflow start`."""

    @workflow.init
    def __init__(self, incident: Incident) -> None:
        """The memory exists before any handler runs, so a signal that comes first finds it;
        the parts work over it and show in their constructors what else they use."""
        self._m, self._carry = Carry.remember(incident)
        self._metrics = IncidentMetrics(self._m)
        self._communication = Communication(self._m, self._metrics)
        self._gate = ApprovalGate(self._m, self._communication, self._metrics)
        self._probes = Probes(self._m)
        self._triage = Triage(self._m, self._probes)
        self._execution = Execution(self._m, self._probes, self._gate, self._metrics)
        self._maintenance = Maintenance(self._m, self._probes, self._gate, self._execution)
        self._beside: asyncio.Task[None] | None = None  # maintenance mode's own task

    @workflow.run
    async def run(self, incident: Incident) -> IncidentReport:
        self._m.legacy_judgement = not workflow.patched(PATCH_JUDGEMENT)
        self._m.local_reads = workflow.patched(PATCH_LOCAL_READS)
        self._m.offers_maintenance = workflow.patched(PATCH_MAINTENANCE)
        if incident.carried is None:
            self._m.note("started", f"{incident.mode.value} run for {incident.target.redis_url}",
                       actor=incident.requested_by)  # fmt: skip
            self._m.config = await self._triage.load_config()
            await self._triage.triage_and_plan()
            if incident.mode is Mode.DRY_RUN:
                return await self._finish(verified=None)
        else:
            self._carry.refuse_untrusted()
            if self._carry.trust == "trusted":
                self._m.config = await self._triage.load_config()
                Carry.apply_config(self._m)
            self._m.note(
                "continued", f"run {self._m.runs} picks up at step {self._m.next_step + 1}"
            )
        self._metrics.opened()
        self._metrics.restarts()
        self._communication.start_timers()
        if self._m.offers_maintenance:
            self._beside = asyncio.create_task(self._maintenance.run())
        self._m.phase = "executing"
        try:
            await self._run_plan()
        except ContinueAsNew:
            await Carry.continue_as_new(self._m, self._communication)
        if self._m.abort is not None and self._m.abort.restore_api:
            await self._execution.restore_api()
        elif self._m.stand_down and not self._m.legacy_judgement:
            await self._execution.restore_api_after_stand_down()
        self._m.current = None
        verified = (
            scenario_of(self._m, self._m.latest) if self._m.latest is not self._m.triage else None
        )
        await self._execution.restore_persistence(verified)
        if self._m.offers_maintenance:
            await self._maintenance.close(verified)
        return await self._finish(verified)

    async def _run_plan(self) -> None:
        """Step by step from where this run picks up; ContinueAsNew from a wait, or here when
        the history is too long, hands the rest to the next run."""
        m = self._m
        while m.next_step < len(m.plan):
            step = m.plan[m.next_step]
            if m.history_too_long():
                raise ContinueAsNew
            if m.abort is not None:
                m.skip(step, f"aborted by {m.abort.by}: {m.abort.reason}")
            elif step.offered:
                self._maintenance.leave_to_its_task(step)
            elif m.stand_down and step is not m.last_planned():
                m.skip(step, "not needed: every alert resolved")
            else:
                if step.name is StepName.WATCH_HIT_RATE and m.offers_maintenance:
                    await self._maintenance.end_if_back()
                await self._execution.execute(step)
            m.next_step += 1

    # ---- messages -------------------------------------------------------------------------

    @workflow.signal(name="approve", description=f"Approve a pending step: {DECISION_HINT}. "
                     f"{SIGNAL_NOTE}")  # fmt: skip
    def approve(self, payload: Any) -> None:
        self._gate.signalled(payload, "approve")

    @workflow.signal(name="reject", description=f"Reject a pending step: {DECISION_HINT}. "
                     f"{SIGNAL_NOTE}")  # fmt: skip
    def reject(self, payload: Any) -> None:
        self._gate.signalled(payload, "reject")

    @workflow.update(
        name="decide",
        description='Approve or reject a step and get the verdict at once: {"step": "flush", '
        '"approver": "your-name", "comment": "why", "decision": "approve" | "reject"}',
    )
    async def decide(self, decision: Decision) -> str:
        await workflow.wait_condition(lambda: self._m.book is not None)
        verdict = await self._gate.decide(decision)
        if not verdict.accepted:
            raise ApplicationError(verdict.reason, type="ApprovalRefused", non_retryable=True)
        return verdict.reason

    @decide.validator
    def _decide_allowed(self, decision: Decision) -> None:
        if self._m.phase == "done":
            raise ValueError("the incident has ended: nothing waits for approval")

    @workflow.signal(
        name="alert",
        description='A new or resolved alert for this target: {"source", "name", "status": '
        '"firing"|"resolved", "labels", "annotations", "starts_at", "fingerprint"}. '
        "Deduplicated by fingerprint.",
    )
    def alert(self, alert: Alert) -> None:
        """Record an alert; repeats of a known fingerprint with the same status are counted."""
        if not self._m.ledger.record(alert):
            return
        verb = "resolved" if alert.status is AlertStatus.RESOLVED else "firing"
        self._m.note("alert", f"{alert.name} {verb} ({alert.source}, {alert.fingerprint})")
        resolved = self._m.ledger.all_resolved()
        if resolved and not self._m.stand_down and self._m.phase != "done":
            self._m.note("alert", "every alert resolved: no further action, verify and end")
            self._gate.withdraw_pending("every alert resolved")
        self._m.stand_down = resolved

    @workflow.signal(
        name="abort",
        description='Stop after the current step: {"by": "your-name", "reason": "why", '
        '"restore_api": true}. Fallback is still undone unless restore_api is false.',
    )
    def abort(self, payload: Any) -> None:
        request = parse(Abort, payload)
        if isinstance(request, Malformed):
            self._m.note("abort_refused", f"malformed abort: {request.problems}",
                         actor=request.actor("by"))  # fmt: skip
            return
        if self._m.abort is None and self._m.phase != "done":
            self._m.abort = request
            self._m.note(
                "abort", f"abort requested: {request.reason or 'no reason'}", actor=request.by
            )
            self._gate.withdraw_pending(f"aborted by {request.by}")

    @workflow.signal(
        name="refused",
        description="Record an approval attempt refused before it got here (forged, stale, "
        'unmapped): {"source": "slack", "actor": "U123", "reason": "why"}. Never acts.',
    )
    def refused(self, payload: Any) -> None:
        refusal = parse(Refusal, payload)
        if isinstance(refusal, Malformed):
            self._m.note("approval_refused", f"malformed refusal: {refusal.problems}")
            return
        self._m.note("approval_refused", f"{refusal.source}: {refusal.reason}", actor=refusal.actor)
        self._metrics.refused(refusal.source)

    @workflow.query(name="status", description="Phase, scenario, plan, pending approvals.")
    def status(self) -> IncidentStatus:
        pending = [
            p.model_copy(update={"approved_by": self._m.book.approvers_of(p.step)})
            if self._m.book
            else p
            for p in self._m.pending.values()
        ]
        return IncidentStatus(
            phase=self._m.phase,
            scenario=self._m.scenario,
            reasons=self._m.reasons,
            plan=self._m.plan,
            current_step=self._m.current,
            pending_approvals=pending,
            timeline=self._m.timeline,
            alerts=self._m.ledger.alerts(),
            alert_summary=self._m.ledger.summary(),
            review=draft.review if (draft := report_of(self._m)) else "",
            incident_run=workflow.info().first_execution_run_id,
            plan_digest=plan_digest(self._m.plan),
        )

    # ---- the end -------------------------------------------------------------------------

    async def _finish(self, verified: Scenario | None) -> IncidentReport:
        self._m.outcome = outcome_of(self._m, verified)
        self._m.phase = "done"
        self._metrics.finished()
        self._m.note("finished", f"outcome {self._m.outcome}")
        await self._communication.close()
        await workflow.wait_condition(workflow.all_handlers_finished)
        report = report_of(self._m)
        assert report is not None
        return report
