"""The RedisCacheFailure workflow: one durable incident per Redis target.

Triage (diagnose), classify, plan; in dry-run mode report the plan and touch nothing.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.models import (
        Alert,
        AlertStatus,
        Diagnosis,
        Incident,
        IncidentReport,
        IncidentStatus,
        Mode,
        Outcome,
        PendingApproval,
        Phase,
        Scenario,
        Step,
        StepName,
        StepStatus,
        TimelineEntry,
    )
    from activities.policy import Policy, PolicyActivities
    from activities.redis_diagnosis import RedisDiagnosisActivities
    from workflows import retries
    from workflows.classify import explain
    from workflows.plan import plan_for

WORKFLOW_TYPE = "RedisCacheFailure"


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
        self._pending: list[PendingApproval] = []
        self._timeline: list[TimelineEntry] = []
        self._alerts: dict[str, Alert] = {}
        for alert in incident.alerts:
            self._alerts.setdefault(alert.fingerprint, alert)

    @workflow.run
    async def run(self, incident: Incident) -> IncidentReport:
        started = workflow.now()
        self._note(
            "started",
            f"{incident.mode.value} run for {incident.target.redis_url}",
            actor=incident.requested_by,
        )
        if incident.mode is Mode.AUTO:
            raise ApplicationError(
                "mode 'auto' is not available on this worker yet: the remediation activities "
                "(restart, flush, raise_maxclients, ...) are not installed. "
                "Start the incident with mode 'dry-run' to get the diagnosis and the plan.",
                type="ModeNotAvailable",
                non_retryable=True,
            )
        policy = await self._policy()
        began = workflow.now()
        diagnosis = await self._diagnose()
        self._classify(diagnosis, policy)
        self._mark(StepName.DIAGNOSE, "succeeded", began)
        self._phase = "done"
        self._note("finished", "dry run: planned, nothing changed")
        return self._report(diagnosis, "planned", started)

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

    @workflow.query(name="status")
    def status(self) -> IncidentStatus:
        """Where the incident stands: phase, scenario, plan, pending approvals, timeline."""
        return IncidentStatus(
            phase=self._phase,
            scenario=self._scenario,
            reasons=self._reasons,
            plan=self._plan,
            current_step=self._current,
            pending_approvals=self._pending,
            timeline=self._timeline,
            alerts=list(self._alerts.values()),
        )

    async def _policy(self) -> Policy:
        return await workflow.execute_activity_method(
            PolicyActivities.current_policy,
            start_to_close_timeout=retries.CONFIG_TIMEOUT,
            retry_policy=retries.CONFIG,
        )

    async def _diagnose(self) -> Diagnosis:
        self._current = StepName.DIAGNOSE
        diagnosis = await workflow.execute_activity_method(
            RedisDiagnosisActivities.diagnose_redis,
            self._incident.target,
            start_to_close_timeout=retries.PROBE_TIMEOUT,
            retry_policy=retries.PROBE,
        )
        self._current = None
        state = "reachable" if diagnosis.reachable else "unreachable"
        self._note("step", f"diagnose: Redis {state}, {len(diagnosis.findings)} findings")
        return diagnosis

    def _classify(self, diagnosis: Diagnosis, policy: Policy) -> None:
        self._phase = "planning"
        fired = explain(diagnosis, policy.thresholds)
        self._scenario = fired[0][0] if fired else Scenario.HEALTHY
        self._reasons = [f"{scenario.value}: {reason}" for scenario, reason in fired]
        self._note(
            "classified",
            f"{self._scenario.value}: " + (fired[0][1] if fired else "no threshold crossed"),
        )
        self._plan = plan_for(self._scenario, diagnosis, policy)
        self._note("planned", ", ".join(s.name.value for s in self._plan))

    def _mark(self, name: StepName, status: StepStatus, began: datetime) -> None:
        """Record the outcome on the first still-planned step of that name."""
        for step in self._plan:
            if step.name is name and step.status == "planned":
                step.status, step.started_at, step.finished_at = status, began, workflow.now()
                return

    def _note(self, kind: str, message: str, actor: str | None = None) -> None:
        self._timeline.append(
            TimelineEntry(at=workflow.now(), kind=kind, message=message, actor=actor)
        )

    def _report(self, diagnosis: Diagnosis, outcome: Outcome, started: datetime) -> IncidentReport:
        return IncidentReport(
            workflow_id=workflow.info().workflow_id,
            target=self._incident.target,
            mode=self._incident.mode,
            scenario=self._scenario or Scenario.HEALTHY,
            reasons=self._reasons,
            outcome=outcome,
            steps=self._plan,
            approvals=[],
            diagnosis=diagnosis,
            timeline=self._timeline,
            alerts=list(self._alerts.values()),
            started_at=started,
            finished_at=workflow.now(),
        )
