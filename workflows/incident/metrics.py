"""The incident's own metrics, through Temporal's metric meter: the worker's runtime exports
them with the SDK's (`metrics.address`), and the SDK drops them while a history replays, so
a replayed or continued run never counts twice. No I/O here: the meter only records.

Labels stay bounded: the target (one live incident each, `namespace/statefulset`), the
scenario, the step, the outcome, how a decision was proven. Gauges are per target, which is
what makes them meaningful across workflows: one incident per target at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import MetricMeter

with workflow.unsafe.imports_passed_through():
    from contracts.decisions import Decision
    from contracts.incident import Mode
    from contracts.steps import Step, StepName
    from workflows.incident.memory import IncidentMemory


REFUSED_AT = frozenset({"decision", "slack", "approvals", "webhook", "abort"})


class IncidentMetrics:
    def __init__(self, memory: IncidentMemory) -> None:
        self._m = memory

    def _meter(self) -> MetricMeter:
        target = self._m.target
        return workflow.metric_meter().with_additional_attributes(
            {"target": f"{target.namespace}/{target.statefulset}"}
        )

    def opened(self) -> None:
        self._meter().create_gauge("runbook_incident_open", "1 while the target has an incident"
                                   ).set(1)  # fmt: skip

    def finished(self) -> None:
        m = self._m
        meter = self._meter()
        if m.input.mode is not Mode.DRY_RUN:  # a dry run beside a live incident changes nothing
            meter.create_gauge("runbook_incident_open", "1 while the target has an incident").set(0)
            self.pending_changed()
            self.fallback(m.fallback_left_on())
        meter.create_counter(
            "runbook_incidents_finished", "Incidents ended, by scenario and outcome"
        ).add(1, {"scenario": m.scenario_name(), "outcome": m.outcome or "escalated"})

    def step(self, step: Step, began: datetime) -> None:
        """A step that ran (not one skipped by its condition): its result and duration."""
        meter = self._meter()
        labels = {"step": step.name.value, "result": step.status}
        meter.create_counter("runbook_steps", "Steps run, by step and result").add(1, labels)
        meter.create_histogram_timedelta(
            "runbook_step_duration", "How long each step ran, by step", "duration"
        ).record(max(workflow.now() - began, timedelta(0)), {"step": step.name.value})

    def pending_changed(self) -> None:
        """How many approvals wait, and since when the oldest does (0: none): its age is
        `time() - runbook_approval_oldest_pending_timestamp_seconds`."""
        waiting = list(self._m.pending.values())
        meter = self._meter()
        meter.create_gauge("runbook_approvals_pending", "Steps waiting for approval").set(
            len(waiting)
        )
        oldest = min((p.since for p in waiting), default=None)
        meter.create_gauge(
            "runbook_approval_oldest_pending_timestamp_seconds",
            "When the oldest pending approval began waiting (Unix time; 0: none waits)",
        ).set(int(oldest.timestamp()) if oldest else 0)

    def decided(self, decision: Decision, accepted: bool) -> None:
        self._meter().create_counter(
            "runbook_approval_decisions", "Decisions, by how they were proven and what came of them"
        ).add(1, {"decision": decision.decision, "proof": decision.proof,
                  "result": "counted" if accepted else "refused"})  # fmt: skip

    def escalated(self, level: int) -> None:
        self._meter().create_counter("runbook_escalations", "Escalation levels sent").add(
            1, {"level": str(level)}
        )

    def restarts(self) -> None:
        """Restarts of the target in the hour before triage (counted on its StatefulSet,
        across incidents) plus this incident's since, against limits.restarts_per_hour."""
        m = self._m
        kube = m.triage.kubernetes if m.triage else None
        if kube is None or kube.statefulset is None:
            return
        since = kube.taken_at - timedelta(hours=1)
        before = sum(1 for at in kube.statefulset.restarts if at > since)
        ours = sum(1 for s in m.plan if s.name is StepName.RESTART and s.status == "succeeded")
        meter = self._meter()
        meter.create_gauge("runbook_restarts_last_hour", "Restarts of the target in the last hour"
                           ).set(before + ours)  # fmt: skip
        meter.create_gauge("runbook_restart_budget", "limits.restarts_per_hour").set(
            m.config.policy.limits.restarts_per_hour
        )

    def refused(self, source: str) -> None:
        """Decisions or requests turned away (forged, stale, malformed, unbound). Labelled by
        where they were turned away only, from a fixed set: a signal may say anything."""
        where = source if source in REFUSED_AT else "other"
        workflow.metric_meter().create_counter(
            "runbook_refusals", "Refused decisions and requests, by where they were refused"
        ).add(1, {"source": where})

    def fallback(self, on: bool) -> None:
        self._meter().create_gauge(
            "runbook_fallback_active", "1 while the API serves from the database"
        ).set(1 if on else 0)
