"""The RedisCacheFailure workflow: one durable incident per Redis target.

Triage (diagnose, classify, plan, gather evidence); in dry-run mode report the plan and touch
nothing; in auto mode run the plan step by step, every destructive step behind the approval
gate, then verify with a fresh diagnosis and report.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.policy import PolicyActivities, RunbookConfig
    from activities.targets import UNKNOWN_TARGET
    from contracts.alerts import Alert, AlertStatus
    from contracts.analysis import ClientReport, KeyspaceReport, SlowlogReport
    from contracts.decisions import Abort, Decision, Refusal
    from contracts.diagnosis import Diagnosis, Scenario
    from contracts.incident import (
        WORKFLOW_TYPE,
        Incident,
        IncidentReport,
        IncidentStatus,
        Mode,
        Outcome,
    )
    from contracts.kubernetes import FallbackResult, ReadinessResult
    from contracts.step_result import StepResult
    from contracts.steps import Step, StepName
    from workflows.incident import retries
    from workflows.incident.carry import Carry
    from workflows.incident.communication import Communication
    from workflows.incident.errors import ContinueAsNew, cause_of
    from workflows.incident.flap import flapped
    from workflows.incident.gate import ApprovalGate, open_book, submit
    from workflows.incident.payloads import Malformed, parse
    from workflows.incident.probes import Probes
    from workflows.incident.steps import StepContext, run_step
    from workflows.runbook.classify import down_corroborated, stuck_pod
    from workflows.runbook.outcome import outcome_for
    from workflows.runbook.plan import mark_unavailable, plan_for
    from workflows.runbook.review import figures_of, render_review, temporary_changes

DECISION_HINT = '{"step": "flush", "approver": "your-name", "comment": "why"}'
SIGNAL_NOTE = (
    "step: the pending one (query status), e.g. flush, restart, force_delete_pod, "
    "set_eviction_policy, raise_memory_limit, tune_persistence; approver is required. A signal "
    "gets no answer: a refused or malformed one is only noted in the timeline. The update "
    "`decide` answers with the verdict."
)
# The read-only report that helps a person judge each scenario's fix: (field, activity, type).
EVIDENCE: dict[Scenario, tuple[str, str, type[Any]]] = {
    Scenario.OUT_OF_MEMORY: ("keyspace", "keyspace_report", KeyspaceReport),
    Scenario.TOO_MANY_CONNECTIONS: ("clients", "client_report", ClientReport),
    Scenario.SLOW_COMMANDS: ("slowlog", "slowlog_report", SlowlogReport),
    Scenario.HIGH_LATENCY: ("slowlog", "slowlog_report", SlowlogReport),
}
FRESH_TRIAGE = timedelta(seconds=10)
PATCH_LOCAL_CONFIG = "config-as-local-activity"
PATCH_PING_FROM_TRIAGE = "first-ping-from-fresh-triage"
# Corroborated "down" and the judgement rules (workflows/runbook/classify.py): older
# histories replay with the rules they were recorded under.
PATCH_JUDGEMENT = "judgement-corroborated"
POD_STEPS = frozenset({StepName.FORCE_DELETE_POD})
RECOVERY = frozenset({StepName.WARM, StepName.RE_ENABLE, StepName.SCALE, StepName.WATCH_HIT_RATE})


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class RedisCacheFailure:
    """A bad input (ValidationError while decoding) fails the workflow instead of retrying its
    first task forever: people start this by hand with `temporal workflow start`."""

    @workflow.init
    def __init__(self, incident: Incident) -> None:
        """The memory exists before any handler runs, so a signal that comes first finds it;
        the parts work over it and show in their constructors what else they use."""
        self._m, self._carry = Carry.remember(incident)
        self._communication = Communication(self._m)
        self._gate = ApprovalGate(self._m, self._communication)
        self._probes = Probes(self._m)

    @workflow.run
    async def run(self, incident: Incident) -> IncidentReport:
        self._m.legacy_judgement = not workflow.patched(PATCH_JUDGEMENT)
        if incident.carried is None:
            self._m.note("started", f"{incident.mode.value} run for {incident.target.redis_url}",
                       actor=incident.requested_by)  # fmt: skip
            self._m.config = await self._load_config()
            await self._triage_and_plan()
            if incident.mode is Mode.DRY_RUN:
                return await self._finish(verified=None)
        else:
            self._carry.refuse_untrusted()
            if self._carry.trust == "trusted":
                self._m.config = await self._load_config()
                Carry.apply_config(self._m)
            self._m.note(
                "continued", f"run {self._m.runs} picks up at step {self._m.next_step + 1}"
            )
        self._communication.start_timers()
        self._m.phase = "executing"
        try:
            await self._run_plan()
        except ContinueAsNew:
            await Carry.continue_as_new(self._m, self._communication)
        if self._m.abort is not None and self._m.abort.restore_api:
            await self._restore_api()
        elif self._m.stand_down and not self._m.legacy_judgement:
            await self._restore_api_after_stand_down()
        self._m.current = None
        verified = (
            self._scenario_of(self._m.latest) if self._m.latest is not self._m.triage else None
        )
        await self._restore_persistence(verified)
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
            elif m.stand_down and step is not m.plan[-1]:
                m.skip(step, "not needed: every alert resolved")
            else:
                await self._execute(step)
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
        verdict = submit(self._m, decision)
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
            review=draft.review if (draft := self._report()) else "",
        )

    # ---- triage ---------------------------------------------------------------------------

    async def _load_config(self) -> RunbookConfig:
        """A local activity: the worker's own settings need no task queue round trip. It
        refuses a target the worker is not configured for, before anything contacts it. The
        patch keeps incidents started before the local activity replaying as they ran."""
        target = self._m.input.target
        try:
            if workflow.patched(PATCH_LOCAL_CONFIG):
                return await workflow.execute_local_activity_method(
                    PolicyActivities.runbook_config,
                    target,
                    start_to_close_timeout=retries.CONFIG.timeout,
                    retry_policy=retries.CONFIG.retry,
                )
            return await workflow.execute_activity_method(
                PolicyActivities.runbook_config,
                target,
                start_to_close_timeout=retries.CONFIG.timeout,
                retry_policy=retries.CONFIG.retry,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == UNKNOWN_TARGET:
                raise ApplicationError(
                    cause.message, type=UNKNOWN_TARGET, non_retryable=True
                ) from None
            raise

    async def _triage_and_plan(self) -> Diagnosis:
        began = workflow.now()
        diagnosis = await self._look()
        fired = self._m.explain(diagnosis)
        if self._worth_a_second_look(diagnosis, fired):
            wait = self._m.config.policy.thresholds.vantage_recheck
            self._m.note("vantage", f"{fired[0][1]}; looking again in {wait}")
            await workflow.sleep(wait)
            diagnosis = await self._look()
            fired = self._m.explain(diagnosis)
        self._m.triage = diagnosis
        self._m.phase = "planning"
        self._m.scenario = fired[0][0] if fired else Scenario.HEALTHY
        self._m.reasons = [f"{scenario.value}: {reason}" for scenario, reason in fired]
        why = fired[0][1] if fired else "no threshold crossed"
        self._m.note("classified", f"{self._m.scenario.value}: {why}")
        corroborated = down_corroborated(self._m.judged(diagnosis))
        plan = plan_for(
            self._m.scenario,
            diagnosis,
            self._m.config.policy,
            corroborated,
            self._m.legacy_judgement,
        )
        self._m.plan = mark_unavailable(plan, frozenset(self._m.config.available_steps))
        self._m.note("planned", ", ".join(s.name.value for s in self._m.plan))
        open_book(self._m)
        await self._gather_evidence()
        self._m.mark(
            self._m.plan[0], "succeeded", began, detail="; ".join(self._m.reasons) or "healthy"
        )
        return diagnosis

    def _worth_a_second_look(self, diagnosis: Diagnosis, fired: list[tuple[Scenario, str]]) -> bool:
        """Down as only the worker sees it: Kubernetes calls Redis Ready (its readiness probe may
        not have failed yet), or Kubernetes could not be read (a passing API error). One more
        look decides between a restart and a person."""
        if not fired or self._m.legacy_judgement:
            return False
        if fired[0][0] is Scenario.UNREACHABLE_FROM_RUNBOOK:
            return True
        return (
            fired[0][0] is Scenario.REDIS_DOWN
            and StepName.RESTART in self._m.config.available_steps
            and not down_corroborated(self._m.judged(diagnosis))
        )

    async def _look(self) -> Diagnosis:
        """Redis and, where this worker has it, Kubernetes, in parallel."""
        if StepName.RESTART not in self._m.config.available_steps:
            return await self._probes.diagnose()
        diagnosis, kube = await asyncio.gather(self._probes.diagnose(), self._probes.inspect())
        diagnosis = diagnosis.model_copy(update={"kubernetes": kube})
        self._m.latest = diagnosis
        return diagnosis

    async def _gather_evidence(self) -> None:
        report = EVIDENCE.get(self._m.scenario or Scenario.HEALTHY)
        if report is None:
            return
        field, activity_name, result_type = report
        try:
            result = await workflow.execute_activity(
                activity_name,
                self._m.target,
                start_to_close_timeout=retries.PROBE.timeout,
                retry_policy=retries.PROBE.retry,
                result_type=result_type,
            )
        except ActivityError as err:
            self._m.note("evidence", f"{field} report failed: {cause_of(err)}")
            return
        setattr(self._m.analysis, field, result)
        self._m.note("evidence", f"{field} report gathered")

    # ---- execution ------------------------------------------------------------------------

    async def _execute(self, step: Step) -> None:
        self._m.current = step.name
        if step.condition and not await self._probes.holds(step.condition, wait=step.available):
            return self._m.skip(step, f"not needed: it runs when {step.when}")
        if not step.available:
            self._m.skip(step, "not available on this worker (needs an integration it lacks)")
            if step.name not in RECOVERY and step.name is not StepName.WAIT_READY:
                self._m.problems.append(f"{step.name.value} was needed but is not available")
            return None
        if step.name is StepName.RAISE_MEMORY_LIMIT and "limit" not in step.params:
            why = (
                f"the limit is at the policy's ceiling ({step.params['ceiling']})"
                if "ceiling" in step.params
                else "the container's memory limit is unknown"
            )
            self._m.skip(step, f"{why}: raise it by hand")
            self._m.problems.append(f"raise_memory_limit was needed but {why}")
            return None
        if step.requires_approval and not await self._gate.passes(step):
            return None
        if (
            step.requires_approval
            and step.condition
            and not await self._probes.holds(step.condition)
        ):
            return self._m.skip(step, f"no longer needed after approval: {step.when} no more")
        await self._perform(step)
        return None

    async def _perform(self, step: Step) -> None:
        began = workflow.now()
        step.status, step.started_at = "running", began
        self._m.note("step", f"{step.name.value}: started")
        try:
            if step.name is StepName.DIAGNOSE:
                result = await self._verify()
            elif (seen := self._fresh_triage_answer(step)) is not None:
                result = seen
            elif not (context := await self._context(step)).pod and step.name in POD_STEPS:
                return self._m.skip(step, "no pod is stuck (every pod Ready): nothing to delete")
            else:
                result = await run_step(self._m.target, step, context)
        except ActivityError as err:
            detail = cause_of(err)
            self._m.mark(step, "failed", began, detail=detail)
            self._m.problems.append(f"{step.name.value} failed: {detail}")
            return
        step.result = result
        self._m.answered = bool(result.after.get("ok")) if step.name is StepName.PING else None
        if isinstance(result, FallbackResult) and self._m.original_replicas is None:
            # The first fallback's count: after a flap caught before the scale back, the API
            # still runs the fallback replicas, which the next fallback would take as original.
            self._m.original_replicas = result.original_replicas
        if isinstance(result, ReadinessResult):
            self._m.ready = result.ready
            if not result.ready:  # a finding for the next step's condition, not a failure
                self._m.mark(step, "failed", began, detail=f"not ready: {result.reason}")
                return
        self._m.mark(step, "succeeded", began, detail=result.summary)
        down = self._m.latest is not None and not self._m.latest.reachable
        if step is self._m.plan[-1] and down and self._m.cache_given_back():
            flapped(self._m)

    def _fresh_triage_answer(self, step: Step) -> StepResult | None:
        """The first PING of the redis_down path confirms what triage measured a moment ago
        (several PINGs): within FRESH_TRIAGE, triage's answer is the step's result, one
        round trip sooner. Incidents started before this change replay their PING."""
        triage = self._m.triage
        if step.name is not StepName.PING or triage is None or triage.reachable:
            return None
        age = workflow.now() - triage.taken_at
        if age > FRESH_TRIAGE or triage is not self._m.latest:
            return None
        if not workflow.patched(PATCH_PING_FROM_TRIAGE):
            return None
        why = next((f.message for f in triage.findings), "unreachable")
        return StepResult(
            changed=False,
            summary=f"no answer at triage {age.total_seconds():.1f}s ago: {why}",
            after={"ok": 0, "from_triage": 1},
        )

    async def _restore_api(self) -> None:
        """An abort or a stand-down mid-fallback still gives the API its cache and its
        replicas back."""
        if StepName.ENABLE_FALLBACK not in self._m.done_steps():
            return
        why = "abort" if self._m.abort is not None else "stand_down"
        for step in self._m.plan:
            if step.name in (StepName.RE_ENABLE, StepName.SCALE) and step.status != "succeeded":
                self._m.note(why, f"restoring the API ({why.replace('_', '-')}): {step.name.value}")
                await self._perform(step)

    async def _restore_api_after_stand_down(self) -> None:
        """Every alert resolved mid-fallback: the API gets its cache and replicas back before
        the incident ends, once Redis answers the runbook too; if it does not, the API stays
        on the database and the report says how to restore it."""
        if not self._fallback_in_force():
            return
        if (await self._probes.diagnose()).reachable:
            await self._restore_api()
            return
        self._m.problems.append(
            "every alert resolved, but Redis does not answer the runbook: the API stays on the "
            f"database (to restore: CACHE_ENABLED=true, {self._m.original_replicas or '?'} "
            "replicas)"
        )

    def _fallback_in_force(self) -> bool:
        """A fallback was entered and the cache not given back since."""
        return StepName.ENABLE_FALLBACK in self._m.done_steps() and not self._m.cache_given_back()

    async def _restore_persistence(self, verified: Scenario | None) -> None:
        """Snapshots paused by the plan come back when the incident ends healthy; otherwise the
        pause stays (turning a failing save back on would block writes again) and the report
        says how to undo it, so nothing is left changed unsaid."""
        paused = [
            s
            for s in self._m.plan
            if s.name is StepName.TUNE_PERSISTENCE
            and s.status == "succeeded"
            and s.params.get("save") == ""
            and s.result is not None
            and s.result.changed
        ]
        if not paused or self._m.legacy_judgement or paused[0].result is None:
            return
        before = {k: v for k, v in paused[0].result.before.items() if v is not None}
        if verified is not Scenario.HEALTHY:
            undo = ", ".join(f"CONFIG SET {k} {v!r}" for k, v in before.items())
            self._m.problems.append(f"persistence is still paused: once the cause is fixed, {undo}")
            return
        restore = Step(
            name=StepName.TUNE_PERSISTENCE,
            title="Restore persistence as it was before the incident",
            params=before,
        )
        self._m.plan.append(restore)
        await self._perform(restore)

    async def _context(self, step: Step) -> StepContext:
        """What only this incident knows; a force delete first looks at the pod again."""
        pod, uid = "", ""
        if step.name is StepName.FORCE_DELETE_POD:
            facts = await self._probes.inspect()
            chosen = facts.pods[0] if self._m.legacy_judgement and facts.pods else stuck_pod(facts)
            if chosen is not None:
                pod, uid = chosen.name, chosen.uid or ""
        info = self._m.latest.info if self._m.latest is not None else None
        return StepContext(
            server_run_id=info.run_id if info else "",
            flushes_before=info.flushdb_calls if info else -1,
            stamp=self._m.started_at.isoformat(),
            ready_deadline=workflow.now() + self._m.config.policy.outage.ready_timeout,
            pod=pod,
            uid=uid,
            original_replicas=self._m.original_replicas,
        )

    async def _verify(self) -> StepResult:
        diagnosis = await self._probes.diagnose()
        fired = self._m.explain(diagnosis, since=self._m.previous)
        if not fired:
            return StepResult(changed=False, summary="healthy: no threshold crossed")
        return StepResult(changed=False, summary="; ".join(f"{s.value}: {r}" for s, r in fired))

    # ---- bookkeeping ----------------------------------------------------------------------

    def _scenario_of(self, diagnosis: Diagnosis | None) -> Scenario | None:
        if diagnosis is None:
            return None
        fired = self._m.explain(diagnosis, since=self._m.previous)
        return fired[0][0] if fired else Scenario.HEALTHY

    def _decide_outcome(self, verified: Scenario | None) -> Outcome:
        if self._m.input.mode is Mode.DRY_RUN:
            return "planned"
        if self._m.abort is not None:
            return "aborted"
        original = self._m.scenario or Scenario.HEALTHY
        if original is Scenario.HEALTHY:
            return "resolved"
        outcome = outcome_for(original, verified, self._m.problems)
        if self._m.stand_down and outcome == "escalated":
            return "mitigated"  # monitoring says fine; our own thresholds still differ
        return outcome

    async def _finish(self, verified: Scenario | None) -> IncidentReport:
        self._m.outcome = self._decide_outcome(verified)
        self._m.phase = "done"
        self._m.note("finished", f"outcome {self._m.outcome}")
        await self._communication.close()
        await workflow.wait_condition(workflow.all_handlers_finished)
        report = self._report()
        assert report is not None
        return report

    def _report(self) -> IncidentReport | None:
        """The report as it stands: final at the end, a draft for the queries before that."""
        if self._m.triage is None:
            return None
        report = IncidentReport(
            workflow_id=workflow.info().workflow_id,
            target=self._m.target,
            mode=self._m.input.mode,
            scenario=self._m.scenario or Scenario.HEALTHY,
            reasons=self._m.reasons,
            outcome=self._m.outcome or "escalated",
            steps=self._m.plan,
            approvals=self._m.approvals,
            diagnosis=self._m.triage,
            verification=self._m.latest if self._m.latest is not self._m.triage else None,
            analysis=self._m.analysis,
            escalations=self._m.problems,
            timeline=self._m.timeline,
            alerts=self._m.ledger.alerts(),
            alert_summary=self._m.ledger.summary(),
            requested_by=self._m.input.requested_by,
            started_at=self._m.started_at,
            finished_at=workflow.now(),
        )
        report.figures = figures_of(report, self._m.approval_wait_s)
        report.temporary = temporary_changes(report.steps)
        report.review = render_review(report, final=self._m.outcome is not None)
        return report
