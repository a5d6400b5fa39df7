"""The runbook's communication template, filled from the incident's state. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from activities.notifications.models import IncidentState, Notification, NotificationKind
from contracts.alerts import Alert
from contracts.decisions import PendingApproval
from contracts.diagnosis import Scenario
from contracts.incident import Outcome, Phase
from contracts.steps import Step
from workflows.runbook.approvals import plan_digest

IMPACT = {
    Scenario.REDIS_DOWN: "Cache unavailable: requests go to the database; higher latency and load",
    Scenario.APPLICATION_CUT_OFF: "The API cannot reach the cache: requests go to the database",
    Scenario.OUT_OF_MEMORY: "Cache refusing writes or evicting: lower hit rate, more database load",
    Scenario.TOO_MANY_CONNECTIONS: "New cache connections refused: some requests hit the database",
    Scenario.SLOW_COMMANDS: "Slow cache commands: higher API latency",
    Scenario.HIGH_LATENCY: "Cache latency is high: higher API latency",
    Scenario.FAILOVER: "Cache writes fail until Sentinel promotes a replica: requests may go to "
    "the database",
    Scenario.NO_FAILOVER: "Cache master down with no automatic failover: writes fail until a "
    "person forces one",
    Scenario.REPLICA_DEGRADED: "A replica is down or behind: reads from it may be stale; the "
    "master serves as before",
    Scenario.SENTINELS_DEGRADED: "No user impact now; a master failure would not fail over",
    Scenario.HEALTHY: "No user impact seen on the cache",
}
MINUTES_PER_STEP = 2


def state_of(phase: Phase, outcome: Outcome | None) -> IncidentState:
    if outcome is not None:
        return "Resolved" if outcome in ("resolved", "mitigated", "planned") else "Escalated"
    return {
        "triage": "Investigating",
        "planning": "Identified",
        "executing": "Resolving",
        "recovering": "Resolving",
    }.get(phase, "Resolved")  # type: ignore[return-value]


def severity_of(alerts: list[Alert], default: str) -> str:
    for alert in alerts:
        if alert.labels.get("severity"):
            return alert.labels["severity"]
    return default


def current_actions(current: Step | None, pending: list[PendingApproval]) -> str:
    if pending:
        return "; ".join(f"waiting for approval of {p.step.value}: {p.action}" for p in pending)
    if current is None:
        return "none"
    return f"{current.name.value}: {current.title}"


def estimate(plan: list[Step], pending: list[PendingApproval], timeout: timedelta) -> str:
    if pending:
        until = min(p.since for p in pending) + timeout
        return f"after approval (the request expires at {until:%H:%M} UTC)"
    left = sum(1 for s in plan if s.status in ("planned", "running"))
    if left == 0:
        return "now"
    return f"about {left * MINUTES_PER_STEP} minutes ({left} steps left)"


def cadence(started: datetime, now: datetime, every: timedelta | None, final: bool) -> str:
    """The runbook's "next update" line: updates come every `every` from the start."""
    if final:
        return "none: this is the last update"
    if every is None or every <= timedelta(0):
        return "when something changes"
    due = started + every * (int((now - started) / every) + 1)
    minutes = every.total_seconds() / 60
    return f"every {minutes:g} minutes; the next by {due:%H:%M} UTC"


def notification(
    *,
    workflow_id: str,
    kind: NotificationKind,
    title: str,
    started: datetime,
    now: datetime,
    phase: Phase,
    outcome: Outcome | None,
    scenario: Scenario | None,
    plan: list[Step],
    pending: list[PendingApproval],
    alerts: list[Alert],
    severity: str,
    approval_timeout: timedelta,
    recipients: list[str] | None = None,
    incident_run: str = "",
    status_every: timedelta | None = None,
) -> Notification:
    current = next((s for s in plan if s.status in ("running", "pending_approval")), None)
    return Notification(
        workflow_id=workflow_id,
        kind=kind,
        title=title,
        status=state_of(phase, outcome),
        started=started,
        severity=severity_of(alerts, severity),
        impact=IMPACT.get(scenario, "Under investigation") if scenario else "Under investigation",
        current_actions=current_actions(current, pending),
        estimated_resolution="resolved" if outcome else estimate(plan, pending, approval_timeout),
        next_update=cadence(started, now, status_every, final=kind == "final"),
        recipients=recipients or [],
        sent_at=now,
        pending_steps=[p.step for p in pending] if outcome is None else [],
        incident_run=incident_run,
        plan_digest=plan_digest(plan),
    )
