"""The incident's outcome and its report, read from its memory: the draft the `status` query
shows while it runs, and the result it returns."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.diagnosis import Diagnosis, Scenario
    from contracts.incident import IncidentReport, Mode, Outcome
    from workflows.incident.memory import IncidentMemory
    from workflows.runbook.outcome import outcome_for
    from workflows.runbook.review import figures_of, render_review, temporary_changes


def scenario_of(m: IncidentMemory, diagnosis: Diagnosis | None) -> Scenario | None:
    if diagnosis is None:
        return None
    fired = m.explain(diagnosis, since=m.previous)
    return fired[0][0] if fired else Scenario.HEALTHY


def outcome_of(m: IncidentMemory, verified: Scenario | None) -> Outcome:
    if m.input.mode is Mode.DRY_RUN:
        return "planned"
    if m.abort is not None:
        return "aborted"
    original = m.scenario or Scenario.HEALTHY
    if original is Scenario.HEALTHY:
        return "resolved"
    outcome = outcome_for(original, verified, m.problems)
    if m.stand_down and outcome == "escalated":
        return "mitigated"  # monitoring says fine; our own thresholds still differ
    return outcome


def report_of(m: IncidentMemory) -> IncidentReport | None:
    """The report as it stands: final at the end, a draft for the queries before that."""
    if m.triage is None:
        return None
    report = IncidentReport(
        workflow_id=workflow.info().workflow_id,
        target=m.target,
        mode=m.input.mode,
        scenario=m.scenario or Scenario.HEALTHY,
        reasons=m.reasons,
        outcome=m.outcome or "escalated",
        steps=m.plan,
        approvals=m.approvals,
        diagnosis=m.triage,
        verification=m.latest if m.latest is not m.triage else None,
        analysis=m.analysis,
        escalations=m.problems,
        timeline=m.timeline,
        alerts=m.ledger.alerts(),
        alert_summary=m.ledger.summary(),
        requested_by=m.input.requested_by,
        started_at=m.started_at,
        finished_at=workflow.now(),
        samples=m.samples,
    )
    report.figures = figures_of(report, m.approval_wait_s)
    report.temporary = temporary_changes(report.steps)
    report.review = render_review(report, final=m.outcome is not None)
    return report
