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
    from workflows.incident.carry import IncidentCarry
    from workflows.incident.communication import IncidentCommunication
    from workflows.incident.errors import cause_of
    from workflows.incident.flap import FlapGuard
    from workflows.incident.gate import ApprovalGate
    from workflows.incident.probes import IncidentProbes
    from workflows.incident.steps import StepContext, run_step
    from workflows.runbook.approvals import ApprovalBook
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
class RedisCacheFailure(
    IncidentCarry, ApprovalGate, IncidentProbes, FlapGuard, IncidentCommunication
):
    """A bad input (ValidationError while decoding) fails the workflow instead of retrying its
    first task forever: people start this by hand with `temporal workflow start`."""

    @workflow.init
    def __init__(self, incident: Incident) -> None:
        super().__init__(incident)
        if incident.carried is not None:
            self._accept_carried(incident.carried)

    @workflow.run
    async def run(self, incident: Incident) -> IncidentReport:
        self._legacy_judgement = not workflow.patched(PATCH_JUDGEMENT)
        if incident.carried is None:
            self._note("started", f"{incident.mode.value} run for {incident.target.redis_url}",
                       actor=incident.requested_by)  # fmt: skip
            self._config = await self._load_config()
            await self._triage_and_plan()
            if incident.mode is Mode.DRY_RUN:
                return await self._finish(verified=None)
        else:
            self._refuse_untrusted_carry()
            if self._carry == "trusted":
                self._config = await self._load_config()
                self._apply_config_to_carried_plan()
            self._note("continued", f"run {self._runs} picks up at step {self._index + 1}")
        self._start_timers()
        self._phase = "executing"
        while self._index < len(self._plan):
            step = self._plan[self._index]
            if self._history_too_long():
                await self._continue_as_new()
            if self._abort is not None:
                self._skip(step, f"aborted by {self._abort.by}: {self._abort.reason}")
            elif self._stand_down and step is not self._plan[-1]:
                self._skip(step, "not needed: every alert resolved")
            else:
                await self._execute(step)
            self._index += 1
        if self._abort is not None and self._abort.restore_api:
            await self._restore_api()
        elif self._stand_down and not self._legacy_judgement:
            await self._restore_api_after_stand_down()
        self._current = None
        verified = self._scenario_of(self._latest) if self._latest is not self._triage else None
        await self._restore_persistence(verified)
        return await self._finish(verified)

    # ---- messages -------------------------------------------------------------------------

    @workflow.signal(name="approve", description=f"Approve a pending step: {DECISION_HINT}. "
                     f"{SIGNAL_NOTE}")  # fmt: skip
    def approve(self, payload: Any) -> None:
        self._signalled(payload, "approve")

    @workflow.signal(name="reject", description=f"Reject a pending step: {DECISION_HINT}. "
                     f"{SIGNAL_NOTE}")  # fmt: skip
    def reject(self, payload: Any) -> None:
        self._signalled(payload, "reject")

    @workflow.update(
        name="decide",
        description='Approve or reject a step and get the verdict at once: {"step": "flush", '
        '"approver": "your-name", "comment": "why", "decision": "approve" | "reject"}',
    )
    async def decide(self, decision: Decision) -> str:
        await workflow.wait_condition(lambda: self._book is not None)
        verdict = self._submit(decision)
        if not verdict.accepted:
            raise ApplicationError(verdict.reason, type="ApprovalRefused", non_retryable=True)
        return verdict.reason

    @decide.validator
    def _decide_allowed(self, decision: Decision) -> None:
        if self._phase == "done":
            raise ValueError("the incident has ended: nothing waits for approval")

    @workflow.signal(
        name="alert",
        description='A new or resolved alert for this target: {"source", "name", "status": '
        '"firing"|"resolved", "labels", "annotations", "starts_at", "fingerprint"}. '
        "Deduplicated by fingerprint.",
    )
    def alert(self, alert: Alert) -> None:
        """Record an alert; repeats of a known fingerprint with the same status are counted."""
        if not self._alerts.record(alert):
            return
        verb = "resolved" if alert.status is AlertStatus.RESOLVED else "firing"
        self._note("alert", f"{alert.name} {verb} ({alert.source}, {alert.fingerprint})")
        resolved = self._alerts.all_resolved()
        if resolved and not self._stand_down and self._phase != "done":
            self._note("alert", "every alert resolved: no further action, verify and end")
            self._withdraw_pending("every alert resolved")
        self._stand_down = resolved

    @workflow.signal(
        name="abort",
        description='Stop after the current step: {"by": "your-name", "reason": "why", '
        '"restore_api": true}. Fallback is still undone unless restore_api is false.',
    )
    def abort(self, payload: Any) -> None:
        fields = payload if isinstance(payload, dict) else {}
        try:
            request = Abort.model_validate(fields)
        except ValidationError as err:
            self._note("abort_refused", f"malformed abort: {err.errors()[0]['msg']}",
                       actor=str(fields.get("by", "unknown")))  # fmt: skip
            return
        if self._abort is None and self._phase != "done":
            self._abort = request
            self._note(
                "abort", f"abort requested: {request.reason or 'no reason'}", actor=request.by
            )
            self._withdraw_pending(f"aborted by {request.by}")

    @workflow.signal(
        name="refused",
        description="Record an approval attempt refused before it got here (forged, stale, "
        'unmapped): {"source": "slack", "actor": "U123", "reason": "why"}. Never acts.',
    )
    def refused(self, payload: Any) -> None:
        fields = payload if isinstance(payload, dict) else {}
        try:
            refusal = Refusal.model_validate(fields)
        except ValidationError as err:
            self._note("approval_refused", f"malformed refusal: {err.errors()[0]['msg']}")
            return
        self._note("approval_refused", f"{refusal.source}: {refusal.reason}", actor=refusal.actor)

    @workflow.query(name="status", description="Phase, scenario, plan, pending approvals.")
    def status(self) -> IncidentStatus:
        pending = [
            p.model_copy(update={"approved_by": self._book.approvers_of(p.step)})
            if self._book
            else p
            for p in self._pending.values()
        ]
        return IncidentStatus(
            phase=self._phase,
            scenario=self._scenario,
            reasons=self._reasons,
            plan=self._plan,
            current_step=self._current,
            pending_approvals=pending,
            timeline=self._timeline,
            alerts=self._alerts.alerts(),
            alert_summary=self._alerts.summary(),
            review=draft.review if (draft := self._report()) else "",
        )

    # ---- triage ---------------------------------------------------------------------------

    async def _load_config(self) -> RunbookConfig:
        """A local activity: the worker's own settings need no task queue round trip. It
        refuses a target the worker is not configured for, before anything contacts it. The
        patch keeps incidents started before the local activity replaying as they ran."""
        target = self._incident.target
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
        fired = self._explain(diagnosis)
        if self._worth_a_second_look(diagnosis, fired):
            wait = self._config.policy.thresholds.vantage_recheck
            self._note("vantage", f"{fired[0][1]}; looking again in {wait}")
            await workflow.sleep(wait)
            diagnosis = await self._look()
            fired = self._explain(diagnosis)
        self._triage = diagnosis
        self._phase = "planning"
        self._scenario = fired[0][0] if fired else Scenario.HEALTHY
        self._reasons = [f"{scenario.value}: {reason}" for scenario, reason in fired]
        why = fired[0][1] if fired else "no threshold crossed"
        self._note("classified", f"{self._scenario.value}: {why}")
        corroborated = down_corroborated(self._judged(diagnosis))
        plan = plan_for(
            self._scenario, diagnosis, self._config.policy, corroborated, self._legacy_judgement
        )
        self._plan = mark_unavailable(plan, frozenset(self._config.available_steps))
        self._book = ApprovalBook.for_plan(
            self._config.policy.approvals, self._incident.requested_by, self._plan
        )
        self._note("planned", ", ".join(s.name.value for s in self._plan))
        for decision in self._inbox:
            self._submit(decision)
        self._inbox.clear()
        await self._gather_evidence()
        self._mark(self._plan[0], "succeeded", began, detail="; ".join(self._reasons) or "healthy")
        return diagnosis

    def _worth_a_second_look(self, diagnosis: Diagnosis, fired: list[tuple[Scenario, str]]) -> bool:
        """Down as only the worker sees it: Kubernetes calls Redis Ready (its readiness probe may
        not have failed yet), or Kubernetes could not be read (a passing API error). One more
        look decides between a restart and a person."""
        if not fired or self._legacy_judgement:
            return False
        if fired[0][0] is Scenario.UNREACHABLE_FROM_RUNBOOK:
            return True
        return (
            fired[0][0] is Scenario.REDIS_DOWN
            and StepName.RESTART in self._config.available_steps
            and not down_corroborated(self._judged(diagnosis))
        )

    async def _look(self) -> Diagnosis:
        """Redis and, where this worker has it, Kubernetes, in parallel."""
        if StepName.RESTART not in self._config.available_steps:
            return await self._diagnose()
        diagnosis, kube = await asyncio.gather(self._diagnose(), self._inspect())
        diagnosis = diagnosis.model_copy(update={"kubernetes": kube})
        self._latest = diagnosis
        return diagnosis

    async def _gather_evidence(self) -> None:
        report = EVIDENCE.get(self._scenario or Scenario.HEALTHY)
        if report is None:
            return
        field, activity_name, result_type = report
        try:
            result = await workflow.execute_activity(
                activity_name,
                self._target,
                start_to_close_timeout=retries.PROBE.timeout,
                retry_policy=retries.PROBE.retry,
                result_type=result_type,
            )
        except ActivityError as err:
            self._note("evidence", f"{field} report failed: {cause_of(err)}")
            return
        setattr(self._analysis, field, result)
        self._note("evidence", f"{field} report gathered")

    # ---- execution ------------------------------------------------------------------------

    async def _execute(self, step: Step) -> None:
        self._current = step.name
        if step.condition and not await self._holds(step.condition, wait=step.available):
            return self._skip(step, f"not needed: it runs when {step.when}")
        if not step.available:
            self._skip(step, "not available on this worker (needs an integration it lacks)")
            if step.name not in RECOVERY and step.name is not StepName.WAIT_READY:
                self._problems.append(f"{step.name.value} was needed but is not available")
            return None
        if step.name is StepName.RAISE_MEMORY_LIMIT and "limit" not in step.params:
            why = (
                f"the limit is at the policy's ceiling ({step.params['ceiling']})"
                if "ceiling" in step.params
                else "the container's memory limit is unknown"
            )
            self._skip(step, f"{why}: raise it by hand")
            self._problems.append(f"raise_memory_limit was needed but {why}")
            return None
        if step.requires_approval and not await self._gate(step):
            return None
        if step.requires_approval and step.condition and not await self._holds(step.condition):
            return self._skip(step, f"no longer needed after approval: {step.when} no more")
        await self._perform(step)
        return None

    async def _perform(self, step: Step) -> None:
        began = workflow.now()
        step.status, step.started_at = "running", began
        self._note("step", f"{step.name.value}: started")
        try:
            if step.name is StepName.DIAGNOSE:
                result = await self._verify()
            elif (seen := self._fresh_triage_answer(step)) is not None:
                result = seen
            elif not (context := await self._context(step)).pod and step.name in POD_STEPS:
                return self._skip(step, "no pod is stuck (every pod Ready): nothing to delete")
            else:
                result = await run_step(self._target, step, context)
        except ActivityError as err:
            detail = cause_of(err)
            self._mark(step, "failed", began, detail=detail)
            self._problems.append(f"{step.name.value} failed: {detail}")
            return
        step.result = result
        self._answered = bool(result.after.get("ok")) if step.name is StepName.PING else None
        if isinstance(result, FallbackResult) and self._original_replicas is None:
            # The first fallback's count: after a flap caught before the scale back, the API
            # still runs the fallback replicas, which the next fallback would take as original.
            self._original_replicas = result.original_replicas
        if isinstance(result, ReadinessResult):
            self._ready = result.ready
            if not result.ready:  # a finding for the next step's condition, not a failure
                self._mark(step, "failed", began, detail=f"not ready: {result.reason}")
                return
        self._mark(step, "succeeded", began, detail=result.summary)
        down = self._latest is not None and not self._latest.reachable
        if step is self._plan[-1] and down and self._cache_given_back():
            self._flapped()

    def _fresh_triage_answer(self, step: Step) -> StepResult | None:
        """The first PING of the redis_down path confirms what triage measured a moment ago
        (several PINGs): within FRESH_TRIAGE, triage's answer is the step's result, one
        round trip sooner. Incidents started before this change replay their PING."""
        triage = self._triage
        if step.name is not StepName.PING or triage is None or triage.reachable:
            return None
        age = workflow.now() - triage.taken_at
        if age > FRESH_TRIAGE or triage is not self._latest:
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
        if StepName.ENABLE_FALLBACK not in self._done_steps():
            return
        why = "abort" if self._abort is not None else "stand_down"
        for step in self._plan:
            if step.name in (StepName.RE_ENABLE, StepName.SCALE) and step.status != "succeeded":
                self._note(why, f"restoring the API ({why.replace('_', '-')}): {step.name.value}")
                await self._perform(step)

    async def _restore_api_after_stand_down(self) -> None:
        """Every alert resolved mid-fallback: the API gets its cache and replicas back before
        the incident ends, once Redis answers the runbook too; if it does not, the API stays
        on the database and the report says how to restore it."""
        if not self._fallback_in_force():
            return
        if (await self._diagnose()).reachable:
            await self._restore_api()
            return
        self._problems.append(
            "every alert resolved, but Redis does not answer the runbook: the API stays on the "
            f"database (to restore: CACHE_ENABLED=true, {self._original_replicas or '?'} "
            "replicas)"
        )

    def _fallback_in_force(self) -> bool:
        """A fallback was entered and the cache not given back since."""
        return StepName.ENABLE_FALLBACK in self._done_steps() and not self._cache_given_back()

    async def _restore_persistence(self, verified: Scenario | None) -> None:
        """Snapshots paused by the plan come back when the incident ends healthy; otherwise the
        pause stays (turning a failing save back on would block writes again) and the report
        says how to undo it, so nothing is left changed unsaid."""
        paused = [
            s
            for s in self._plan
            if s.name is StepName.TUNE_PERSISTENCE
            and s.status == "succeeded"
            and s.params.get("save") == ""
            and s.result is not None
            and s.result.changed
        ]
        if not paused or self._legacy_judgement or paused[0].result is None:
            return
        before = {k: v for k, v in paused[0].result.before.items() if v is not None}
        if verified is not Scenario.HEALTHY:
            undo = ", ".join(f"CONFIG SET {k} {v!r}" for k, v in before.items())
            self._problems.append(f"persistence is still paused: once the cause is fixed, {undo}")
            return
        restore = Step(
            name=StepName.TUNE_PERSISTENCE,
            title="Restore persistence as it was before the incident",
            params=before,
        )
        self._plan.append(restore)
        await self._perform(restore)

    async def _context(self, step: Step) -> StepContext:
        """What only this incident knows; a force delete first looks at the pod again."""
        pod, uid = "", ""
        if step.name is StepName.FORCE_DELETE_POD:
            facts = await self._inspect()
            chosen = facts.pods[0] if self._legacy_judgement and facts.pods else stuck_pod(facts)
            if chosen is not None:
                pod, uid = chosen.name, chosen.uid or ""
        info = self._latest.info if self._latest is not None else None
        return StepContext(
            server_run_id=info.run_id if info else "",
            flushes_before=info.flushdb_calls if info else -1,
            stamp=self._started.isoformat(),
            ready_deadline=workflow.now() + self._config.policy.outage.ready_timeout,
            pod=pod,
            uid=uid,
            original_replicas=self._original_replicas,
        )

    async def _verify(self) -> StepResult:
        diagnosis = await self._diagnose()
        fired = self._explain(diagnosis, since=self._previous)
        if not fired:
            return StepResult(changed=False, summary="healthy: no threshold crossed")
        return StepResult(changed=False, summary="; ".join(f"{s.value}: {r}" for s, r in fired))

    # ---- bookkeeping ----------------------------------------------------------------------

    def _scenario_of(self, diagnosis: Diagnosis | None) -> Scenario | None:
        if diagnosis is None:
            return None
        fired = self._explain(diagnosis, since=self._previous)
        return fired[0][0] if fired else Scenario.HEALTHY

    def _decide_outcome(self, verified: Scenario | None) -> Outcome:
        if self._incident.mode is Mode.DRY_RUN:
            return "planned"
        if self._abort is not None:
            return "aborted"
        original = self._scenario or Scenario.HEALTHY
        if original is Scenario.HEALTHY:
            return "resolved"
        outcome = outcome_for(original, verified, self._problems)
        if self._stand_down and outcome == "escalated":
            return "mitigated"  # monitoring says fine; our own thresholds still differ
        return outcome

    async def _finish(self, verified: Scenario | None) -> IncidentReport:
        self._outcome = self._decide_outcome(verified)
        self._phase = "done"
        self._note("finished", f"outcome {self._outcome}")
        await self._close_communication()
        await workflow.wait_condition(workflow.all_handlers_finished)
        report = self._report()
        assert report is not None
        return report

    def _report(self) -> IncidentReport | None:
        """The report as it stands: final at the end, a draft for the queries before that."""
        if self._triage is None:
            return None
        report = IncidentReport(
            workflow_id=workflow.info().workflow_id,
            target=self._target,
            mode=self._incident.mode,
            scenario=self._scenario or Scenario.HEALTHY,
            reasons=self._reasons,
            outcome=self._outcome or "escalated",
            steps=self._plan,
            approvals=self._book.approvals if self._book else [],
            diagnosis=self._triage,
            verification=self._latest if self._latest is not self._triage else None,
            analysis=self._analysis,
            escalations=self._problems,
            timeline=self._timeline,
            alerts=self._alerts.alerts(),
            alert_summary=self._alerts.summary(),
            requested_by=self._incident.requested_by,
            started_at=self._started,
            finished_at=workflow.now(),
        )
        report.figures = figures_of(report, self._approval_wait_s)
        report.temporary = temporary_changes(report.steps)
        report.review = render_review(report, final=self._outcome is not None)
        return report
