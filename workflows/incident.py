"""The RedisCacheFailure workflow: one durable incident per Redis target.

Triage (diagnose, classify, plan, gather evidence); in dry-run mode report the plan and touch
nothing; in auto mode run the plan step by step, every destructive step behind the approval
gate, then verify with a fresh diagnosis and report.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.analysis_models import Analysis, ClientReport, KeyspaceReport, SlowlogReport
    from activities.carried import CarriedState
    from activities.kubernetes_models import FallbackResult, KubernetesFacts, ReadinessResult
    from activities.models import (
        Abort,
        Alert,
        AlertStatus,
        Condition,
        Decision,
        Diagnosis,
        Incident,
        IncidentReport,
        IncidentStatus,
        Mode,
        Outcome,
        PendingApproval,
        Phase,
        Refusal,
        Scenario,
        Step,
        StepName,
        StepResult,
        StepStatus,
        TimelineEntry,
    )
    from activities.notify_models import NotificationKind
    from activities.policy import EscalationLevel, PolicyActivities, RunbookConfig
    from activities.redis_diagnosis import RedisDiagnosisActivities
    from workflows import retries
    from workflows.approvals import ApprovalBook, Verdict
    from workflows.classify import explain
    from workflows.communication import notification
    from workflows.executor import StepContext, run_step
    from workflows.outcome import outcome_for
    from workflows.plan import mark_unavailable, plan_for
    from workflows.review import figures_of, render_review

WORKFLOW_TYPE = "RedisCacheFailure"
DECISION_HINT = '{"step": "flush", "approver": "your-name", "comment": "why"}'
# The read-only report that helps a person judge each scenario's fix: (field, activity, type).
EVIDENCE: dict[Scenario, tuple[str, str, type[Any]]] = {
    Scenario.OUT_OF_MEMORY: ("keyspace", "keyspace_report", KeyspaceReport),
    Scenario.TOO_MANY_CONNECTIONS: ("clients", "client_report", ClientReport),
    Scenario.SLOW_COMMANDS: ("slowlog", "slowlog_report", SlowlogReport),
    Scenario.HIGH_LATENCY: ("slowlog", "slowlog_report", SlowlogReport),
}
RECOVERY = frozenset({StepName.WARM, StepName.RE_ENABLE, StepName.SCALE, StepName.WATCH_HIT_RATE})


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class RedisCacheFailure:
    """A bad input (ValidationError while decoding) fails the workflow instead of retrying its
    first task forever: people start this by hand with `temporal workflow start`."""

    @workflow.init
    def __init__(self, incident: Incident) -> None:
        self._incident = incident
        self._phase: Phase = "triage"
        self._scenario: Scenario | None = None
        self._reasons: list[str] = []
        self._plan: list[Step] = []
        self._current: StepName | None = None
        self._pending: dict[StepName, PendingApproval] = {}
        self._timeline: list[TimelineEntry] = []
        self._alerts: dict[str, Alert] = {}
        self._book: ApprovalBook | None = None
        self._inbox: list[Decision] = []
        self._problems: list[str] = []
        self._analysis = Analysis()
        self._config = RunbookConfig()
        self._triage: Diagnosis | None = None
        self._latest: Diagnosis | None = None
        self._previous: Diagnosis | None = None
        self._approval_wait_s = 0.0
        self._ready: bool | None = None
        self._answered: bool | None = None
        self._original_replicas: int | None = None
        self._started = workflow.now()
        self._outcome: Outcome | None = None
        self._abort: Abort | None = None
        self._stand_down = False
        self._withdrawn: dict[StepName, str] = {}
        self._timers: list[asyncio.Task[None]] = []
        self._deliveries: list[asyncio.Task[None]] = []
        self._runs = 1
        self._escalations_sent = 0
        self._pending_since: dict[StepName, datetime] = {}
        self._index = 1
        for alert in incident.alerts:
            self._alerts.setdefault(alert.fingerprint, alert)
        if incident.carried is not None:
            self._restore(CarriedState.model_validate(incident.carried))

    def _restore(self, c: CarriedState) -> None:
        """Pick up where the previous run stopped: same plan, approvals, timers' progress."""
        self._runs, self._started, self._config = c.runs, c.started_at, c.config
        self._scenario, self._reasons, self._plan = c.scenario, c.reasons, c.plan
        self._timeline, self._problems, self._analysis = c.timeline, c.problems, c.analysis
        self._alerts = {a.fingerprint: a for a in c.alerts}
        self._triage, self._latest = c.triage, c.latest or c.triage
        self._approval_wait_s, self._original_replicas = c.approval_wait_s, c.original_replicas
        self._ready, self._stand_down, self._abort = c.ready, c.stand_down, c.abort
        self._withdrawn, self._pending_since = c.withdrawn, c.pending_since
        self._escalations_sent, self._index, self._phase = (
            c.escalations_sent,
            c.next_step,
            "executing",
        )
        self._book = ApprovalBook.for_plan(
            c.config.policy.approvals, self._incident.requested_by, c.plan
        )
        self._book.approvals = c.approvals
        self._book.closed = dict(c.closed)  # type: ignore[arg-type]

    @workflow.run
    async def run(self, incident: Incident) -> IncidentReport:
        if incident.carried is None:
            self._note("started", f"{incident.mode.value} run for {incident.target.redis_url}",
                       actor=incident.requested_by)  # fmt: skip
            self._config = await self._load_config()
            await self._triage_and_plan()
            if incident.mode is Mode.DRY_RUN:
                return await self._finish(verified=None)
        else:
            self._note("continued", f"run {self._runs} picks up at step {self._index + 1}")
        self._timers = [
            asyncio.create_task(self._escalations()),
            asyncio.create_task(self._status_updates()),
        ]
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
        self._current = None
        verified = self._scenario_of(self._latest) if self._latest is not self._triage else None
        return await self._finish(verified)

    def _history_too_long(self) -> bool:
        info = workflow.info()
        limit = self._config.policy.limits.history_events
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    async def _continue_as_new(self) -> None:
        """Start a fresh run with everything this one knows; the current step is re-entered
        (a pending approval keeps its original start, so its timeout does not restart)."""
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        length = workflow.info().get_current_history_length()
        self._note("continued", f"history at {length} events: continuing as a new run")
        assert self._triage is not None and self._scenario is not None and self._book is not None
        carried = CarriedState(
            runs=self._runs + 1,
            started_at=self._started,
            config=self._config,
            scenario=self._scenario,
            reasons=self._reasons,
            plan=self._plan,
            next_step=self._index,
            timeline=self._timeline,
            alerts=list(self._alerts.values()),
            approvals=self._book.approvals,
            closed=dict(self._book.closed),
            withdrawn=self._withdrawn,
            pending_since=self._pending_since,
            problems=self._problems,
            analysis=self._analysis,
            triage=self._triage,
            latest=self._latest,
            approval_wait_s=self._approval_wait_s,
            original_replicas=self._original_replicas,
            ready=self._ready,
            stand_down=self._stand_down,
            abort=self._abort,
            escalations_sent=self._escalations_sent,
        )
        workflow.continue_as_new(
            self._incident.model_copy(update={"carried": carried.model_dump(mode="json")})
        )

    # ---- messages -------------------------------------------------------------------------

    @workflow.signal(name="approve", description=f"Approve a pending step: {DECISION_HINT}")
    def approve(self, payload: Any) -> None:
        self._signalled(payload, "approve")

    @workflow.signal(name="reject", description=f"Reject a pending step: {DECISION_HINT}")
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
        """Record an alert; repeats of a known fingerprint with the same status are ignored."""
        known = self._alerts.get(alert.fingerprint)
        if known is not None and known.status is alert.status:
            return
        self._alerts[alert.fingerprint] = alert
        verb = "resolved" if alert.status is AlertStatus.RESOLVED else "firing"
        self._note("alert", f"{alert.name} {verb} ({alert.source}, {alert.fingerprint})")
        resolved = all(a.status is AlertStatus.RESOLVED for a in self._alerts.values())
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

    def _withdraw_pending(self, why: str) -> None:
        """At once, in the handler: an approval arriving a moment later must be refused."""
        if self._book is None:
            return
        for step in list(self._pending):
            self._book.withdraw(step)
            self._withdrawn[step] = why
            self._note("approval_withdrawn", f"{step.value}: {why}")

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
            alerts=list(self._alerts.values()),
            review=draft.review if (draft := self._report()) else "",
        )

    def _signalled(self, payload: Any, decision: str) -> None:
        """Signals cannot answer, so a malformed one is recorded rather than dropped unseen."""
        fields = payload if isinstance(payload, dict) else {}
        try:
            parsed = Decision.model_validate({**fields, "decision": decision})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            self._note("approval_refused", f"malformed {decision}: {problems}",
                       actor=str(fields.get("approver", "unknown")))  # fmt: skip
            return
        self._submit(parsed)

    def _submit(self, decision: Decision) -> Verdict:
        if self._book is None:
            self._inbox.append(decision)
            return Verdict(True, "recorded: it is applied as soon as the plan is ready")
        verdict = self._book.submit(decision, workflow.now())
        comment = f" ({decision.comment})" if decision.comment else ""
        kind = "approval" if verdict.accepted else "approval_refused"
        self._note(kind, verdict.reason + comment, actor=decision.approver)
        return verdict

    # ---- triage ---------------------------------------------------------------------------

    async def _load_config(self) -> RunbookConfig:
        return await workflow.execute_activity_method(
            PolicyActivities.runbook_config,
            start_to_close_timeout=retries.CONFIG.timeout,
            retry_policy=retries.CONFIG.retry,
        )

    async def _triage_and_plan(self) -> Diagnosis:
        began = workflow.now()
        if StepName.RESTART in self._config.available_steps:
            diagnosis, kube = await asyncio.gather(self._diagnose(), self._inspect())
            diagnosis = diagnosis.model_copy(update={"kubernetes": kube})
            self._latest = diagnosis
        else:
            diagnosis = await self._diagnose()
        self._triage = diagnosis
        self._phase = "planning"
        fired = explain(diagnosis, self._config.policy.thresholds)
        self._scenario = fired[0][0] if fired else Scenario.HEALTHY
        self._reasons = [f"{scenario.value}: {reason}" for scenario, reason in fired]
        why = fired[0][1] if fired else "no threshold crossed"
        self._note("classified", f"{self._scenario.value}: {why}")
        plan = plan_for(self._scenario, diagnosis, self._config.policy)
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

    async def _diagnose(self) -> Diagnosis:
        diagnosis = await workflow.execute_activity_method(
            RedisDiagnosisActivities.diagnose_redis,
            self._incident.target,
            start_to_close_timeout=retries.PROBE.timeout,
            retry_policy=retries.PROBE.retry,
        )
        self._previous, self._latest = self._latest, diagnosis
        state = "reachable" if diagnosis.reachable else "unreachable"
        self._note("diagnosed", f"Redis {state}, {len(diagnosis.findings)} findings")
        return diagnosis

    async def _inspect(self) -> KubernetesFacts:
        facts: KubernetesFacts = await workflow.execute_activity(
            "inspect_kubernetes",
            self._incident.target,
            start_to_close_timeout=retries.PROBE.timeout,
            retry_policy=retries.PROBE.retry,
            result_type=KubernetesFacts,
        )
        pods = ", ".join(
            f"{p.name} {p.phase}{' ready' if p.ready else ''} restarts={p.restarts}"
            + (f" last={p.last_termination_reason}" if p.last_termination_reason else "")
            for p in facts.pods
        )
        pvcs = ", ".join(f"{v.name} {v.phase}" for v in facts.pvcs)
        self._note("inspected", f"Kubernetes: {facts.problem.value}; pods: {pods or 'none'}; "
                   f"PVCs: {pvcs or 'none'}; limit {facts.memory_limit}")  # fmt: skip
        return facts

    async def _gather_evidence(self) -> None:
        report = EVIDENCE.get(self._scenario or Scenario.HEALTHY)
        if report is None:
            return
        field, activity_name, result_type = report
        try:
            result = await workflow.execute_activity(
                activity_name,
                self._incident.target,
                start_to_close_timeout=retries.PROBE.timeout,
                retry_policy=retries.PROBE.retry,
                result_type=result_type,
            )
        except ActivityError as err:
            self._note("evidence", f"{field} report failed: {_cause(err)}")
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
            self._skip(step, "the container's memory limit is unknown: raise it by hand")
            self._problems.append("raise_memory_limit was needed but the limit is unknown")
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
            else:
                result = await run_step(self._incident.target, step, await self._context(step))
        except ActivityError as err:
            detail = _cause(err)
            self._mark(step, "failed", began, detail=detail)
            self._problems.append(f"{step.name.value} failed: {detail}")
            return
        step.result = result
        self._answered = bool(result.after.get("ok")) if step.name is StepName.PING else None
        if isinstance(result, FallbackResult):
            self._original_replicas = result.original_replicas
        if isinstance(result, ReadinessResult):
            self._ready = result.ready
            if not result.ready:  # a finding for the next step's condition, not a failure
                self._mark(step, "failed", began, detail=f"not ready: {result.reason}")
                return
        self._mark(step, "succeeded", began, detail=result.summary)

    async def _restore_api(self) -> None:
        """An abort mid-fallback still gives the API its cache and its replicas back."""
        done = {s.name for s in self._plan if s.status == "succeeded"}
        if StepName.ENABLE_FALLBACK not in done:
            return
        for step in self._plan:
            if step.name in (StepName.RE_ENABLE, StepName.SCALE) and step.status != "succeeded":
                self._note("abort", f"restoring the API after abort: {step.name.value}")
                await self._perform(step)

    async def _context(self, step: Step) -> StepContext:
        """What only this incident knows; a force delete first looks at the pod again."""
        pod, uid = "", ""
        if step.name is StepName.FORCE_DELETE_POD:
            facts = await self._inspect()
            if facts.pods:
                pod, uid = facts.pods[0].name, facts.pods[0].uid or ""
        return StepContext(
            stamp=self._started.isoformat(),
            ready_deadline=workflow.now() + self._config.policy.outage.ready_timeout,
            pod=pod,
            uid=uid,
            original_replicas=self._original_replicas,
        )

    async def _verify(self) -> StepResult:
        diagnosis = await self._diagnose()
        fired = explain(diagnosis, self._config.policy.thresholds, since=self._previous)
        if not fired:
            return StepResult(changed=False, summary="healthy: no threshold crossed")
        return StepResult(changed=False, summary="; ".join(f"{s.value}: {r}" for s, r in fired))

    async def _gate(self, step: Step) -> bool:
        """Wait for the approvals the policy demands; a timeout is a no, and an escalation."""
        book = self._book
        assert book is not None
        timeout = self._config.policy.approvals.timeout
        if book.state(step.name) == "waiting":
            carried_since = self._pending_since.pop(step.name, None)
            since = carried_since or workflow.now()
            self._pending[step.name] = PendingApproval(
                step=step.name,
                reason="; ".join(self._reasons[:1]) or step.title,
                action=step.title,
                since=since,
                approvals_needed=step.approvals_needed,
            )
            step.status = "pending_approval"
            if carried_since is None:
                self._note(
                    "approval_requested", f"{step.name.value}: {step.title} (within {timeout})"
                )
                self._notify(
                    "approval_request", f"Approval needed: {step.name.value} ({step.title})"
                )
            try:
                await workflow.wait_condition(
                    lambda: book.state(step.name) != "waiting" or self._history_too_long(),
                    timeout=max(since + timeout - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                book.expire(step.name)
                self._note("approval_timeout", f"{step.name.value}: no decision within {timeout}")
            waited = self._pending.pop(step.name)
            if book.state(step.name) == "waiting":  # woken to continue as new: wait on there
                self._pending_since[step.name] = waited.since
                await self._continue_as_new()
            self._approval_wait_s += (workflow.now() - waited.since).total_seconds()
        state = book.state(step.name)
        if state == "withdrawn":
            self._skip(step, f"approval withdrawn: {self._withdrawn.get(step.name, '')}")
            return False
        if state == "approved":
            return True
        self._skip(step, f"not approved ({state})")
        self._problems.append(f"{step.name.value} was not approved ({state}): escalate")
        return False

    async def _holds(self, condition: Condition, wait: bool = True) -> bool:
        """Evaluate a step's condition now, with a fresh diagnosis where it needs one.
        Without `wait` (a step this worker cannot perform anyway), the conditions that wait
        for Redis to come back are judged on one look."""
        done = {s.name for s in self._plan if s.status == "succeeded"}
        if condition is Condition.FLUSHED:
            return StepName.FLUSH in done
        if condition is Condition.FORCE_DELETED:
            return StepName.FORCE_DELETE_POD in done
        if condition is Condition.MEMORY_LIMIT_RAISED:
            return StepName.RAISE_MEMORY_LIMIT in done
        if condition is Condition.FALLBACK_ENTERED:
            within = self._config.policy.outage.wait_for_redis if wait else timedelta(0)
            return StepName.ENABLE_FALLBACK in done and await self._redis_back(
                within, "in fallback, waiting for Redis"
            )
        if condition is Condition.STILL_DOWN_PAST_FALLBACK_DEADLINE:
            if self._ready:  # the last rollout came back and answered PING
                return False
            deadline = self._started + self._config.policy.outage.fallback_after
            within = deadline - workflow.now() if wait else timedelta(0)
            return not await self._redis_back(within, "before fallback")
        # Just measured by the step before: no need to ask Redis again.
        if condition is Condition.STILL_DOWN and self._answered is not None:
            return not self._answered
        if condition is Condition.RESTART_FAILED and self._ready is not None:
            return not self._ready  # wait_ready checks the rollout and PING together
        diagnosis = await self._diagnose()
        if condition in (Condition.STILL_OUT_OF_MEMORY, Condition.STILL_OUT_OF_MEMORY_AFTER_FLUSH):
            fired = explain(diagnosis, self._config.policy.thresholds, since=self._previous)
            return any(s is Scenario.OUT_OF_MEMORY for s, _ in fired)
        if condition is Condition.MEMORY_FRAGMENTED:
            ratio = diagnosis.info.mem_fragmentation_ratio if diagnosis.info else 0.0
            return ratio > self._config.policy.thresholds.fragmentation_ratio
        return not diagnosis.reachable  # STILL_DOWN, RESTART_FAILED

    async def _redis_back(self, within: timedelta, why: str) -> bool:
        """Check Redis until it answers or `within` passes (durable timers between checks);
        an abort ends the wait early."""
        deadline = workflow.now() + within
        while True:
            if (await self._diagnose()).reachable:
                return True
            left = deadline - workflow.now()
            if left.total_seconds() <= 0 or self._abort is not None:
                return False
            if self._history_too_long():
                await self._continue_as_new()
            self._note("waiting", f"Redis still down ({why}); next check in {self._poll(left)}")
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._abort is not None, timeout=self._poll(left)
                )

    def _poll(self, left: timedelta) -> timedelta:
        return min(self._config.policy.outage.poll, left)

    # ---- communication --------------------------------------------------------------------

    async def _escalations(self) -> None:
        """Durable timers from the incident's start; cancelled when the incident ends."""
        levels = self._config.policy.communication.escalation
        for level in levels[self._escalations_sent :]:
            delay = (self._started + level.after) - workflow.now()
            if delay.total_seconds() > 0:
                await workflow.sleep(delay)
            self._escalations_sent += 1
            self._escalate(level)

    def _escalate(self, level: EscalationLevel) -> None:
        who = ", ".join(level.notify)
        self._note("escalation", f"{level.message} -> {who}")
        self._notify("escalation", level.message, recipients=level.notify)

    async def _status_updates(self) -> None:
        every = self._config.policy.communication.status_every
        while True:
            await workflow.sleep(every)
            self._notify("status_update", f"Redis cache incident: {self._scenario_name()}")

    def _notify(
        self, kind: NotificationKind, title: str, recipients: list[str] | None = None
    ) -> None:
        """Fire and forget, per channel: a channel that is down never holds up a step."""
        policy = self._config.policy
        message = notification(
            workflow_id=workflow.info().workflow_id,
            kind=kind,
            title=title,
            started=self._started,
            now=workflow.now(),
            phase=self._phase,
            outcome=self._outcome,
            scenario=self._scenario,
            plan=self._plan,
            pending=list(self._pending.values()),
            alerts=list(self._alerts.values()),
            severity=policy.communication.severity,
            approval_timeout=policy.approvals.timeout,
            recipients=recipients,
        )
        for channel in self._config.channels:
            self._deliveries.append(asyncio.create_task(self._deliver(channel, message)))

    async def _deliver(self, channel: str, message: Any) -> None:
        try:
            await workflow.execute_activity(
                "notify",
                args=[channel, message],
                schedule_to_close_timeout=self._config.policy.communication.notify_timeout,
                retry_policy=retries.NOTIFY.retry,
                result_type=str,
            )
        except ActivityError as err:
            self._note("notification_failed", f"{message.kind} to {channel}: {_cause(err)}")
            return
        self._note("notified", f"{message.kind} to {channel}")

    def _scenario_name(self) -> str:
        return self._scenario.value if self._scenario else "investigating"

    async def _close_communication(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._incident.mode is Mode.AUTO:
            self._notify("final", f"Redis cache incident {self._outcome}: {self._scenario_name()}")
        await asyncio.gather(*self._deliveries, return_exceptions=True)

    # ---- bookkeeping ----------------------------------------------------------------------

    def _scenario_of(self, diagnosis: Diagnosis | None) -> Scenario | None:
        if diagnosis is None:
            return None
        fired = explain(diagnosis, self._config.policy.thresholds, since=self._previous)
        return fired[0][0] if fired else Scenario.HEALTHY

    def _skip(self, step: Step, reason: str) -> None:
        self._mark(step, "skipped", workflow.now(), detail=reason)

    def _mark(self, step: Step, status: StepStatus, began: datetime, detail: str) -> None:
        step.status, step.started_at, step.finished_at = status, began, workflow.now()
        step.detail = detail
        self._note("step", f"{step.name.value}: {status}: {detail}")

    def _note(self, kind: str, message: str, actor: str | None = None) -> None:
        self._timeline.append(
            TimelineEntry(at=workflow.now(), kind=kind, message=message, actor=actor)
        )

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
            target=self._incident.target,
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
            alerts=list(self._alerts.values()),
            requested_by=self._incident.requested_by,
            started_at=self._started,
            finished_at=workflow.now(),
        )
        report.figures = figures_of(report, self._approval_wait_s)
        report.review = render_review(report, final=self._outcome is not None)
        return report


def _cause(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause or err)
