"""The post-incident review: figures computed from what happened, and the Markdown a person
starts the write-up from. Pure: the same report always renders the same review."""

from __future__ import annotations

from datetime import datetime

from contracts.incident import Figures, IncidentReport
from contracts.steps import Step, StepName
from workflows.runbook.drift import config_drift, data_after_restart
from workflows.runbook.plan import DESTRUCTIVE

MITIGATING = DESTRUCTIVE | {StepName.MEMORY_PURGE, StepName.RAISE_MAXCLIENTS}
RUNTIME_STEPS = {StepName.SET_EVICTION_POLICY, StepName.RAISE_MAXCLIENTS, StepName.TUNE_PERSISTENCE}

CHECKLIST = [
    "Root cause identified and written down (not just the symptom)",
    "maxmemory, maxmemory-policy and the container memory limit reviewed",
    "Cache key patterns and TTLs reviewed (the keyspace sample above is a start)",
    "Client connection pools sized and closed properly (maxclients headroom)",
    "Slow commands removed from the application (KEYS, unbounded reads, long Lua)",
    "Persistence settings fit the disk (save points, stop-writes-on-bgsave-error)",
    "Alert thresholds and the escalation timings checked against what happened",
    "The runbook and this automation's policy updated with what was learned",
]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def figures_of(report: IncidentReport, approval_wait_s: float) -> Figures:
    first_alert = min((a.starts_at for a in report.alerts if a.starts_at), default=None)
    fixes = [
        s.finished_at for s in report.steps if s.name in MITIGATING and s.status == "succeeded"
    ]
    before = report.diagnosis.info
    after = report.verification.info if report.verification else None
    evictions = None
    if before and after and after.uptime_seconds >= before.uptime_seconds:
        evictions = after.evicted_keys - before.evicted_keys
    restarts = sum(
        1
        for s in report.steps
        if s.name in (StepName.RESTART, StepName.FORCE_DELETE_POD) and s.status == "succeeded"
    )
    resolved = report.finished_at if report.outcome == "resolved" else None  # drafts: never
    return Figures(
        time_to_detect_s=_seconds(first_alert, report.started_at),
        time_to_mitigate_s=_seconds(report.started_at, min((f for f in fixes if f), default=None)),
        time_to_resolve_s=_seconds(report.started_at, resolved),
        approval_wait_s=round(approval_wait_s, 3),
        hit_rate_before=before.hit_rate if before else None,
        hit_rate_after=after.hit_rate if after else None,
        evictions=evictions,
        restarts=restarts,
    )


def temporary_changes(steps: list[Step]) -> list[str]:
    """CONFIG SETs nothing made durable: no config file took them, no later memory-limit
    patch wrote them into the pod's args, no later step put them back."""
    notes = []
    for i, step in enumerate(steps):
        result = step.result
        if step.name not in RUNTIME_STEPS or step.status != "succeeded" or result is None:
            continue
        durable = str(result.after.get("durable", ""))
        if not result.changed or not durable.startswith("runtime only"):
            continue
        later = [s for s in steps[i + 1 :] if s.status == "succeeded" and s.result is not None]
        if step.name is StepName.TUNE_PERSISTENCE and any(s.name is step.name for s in later):
            continue  # put back as it was
        kept = {
            key
            for s in later
            if s.name is StepName.RAISE_MEMORY_LIMIT and s.result is not None
            for key in s.result.after
        }
        lost = {
            k: v
            for k, v in result.after.items()
            if k != "durable" and k not in kept and result.before.get(k) != v
        }
        if lost:
            changes = ", ".join(f"{k} {v}" for k, v in lost.items())
            notes.append(f"{step.name.value}: {changes}: {durable}")
    return notes


def _figure(value: float | int | None, unit: str = "s") -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value:.0%}"
    return f"{value:g} {unit}".strip()


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _logs(report: IncidentReport) -> list[str]:
    """The runbook's first step of a review: what the Redis and API logs said, quoted."""
    kube = report.diagnosis.kubernetes
    if kube is None or not kube.log_lines:
        return []
    quoted = [
        f"- `{entry.source}` ({entry.kind}" + (f", {entry.count} such lines" if entry.count > 1
        else "") + f"): `{entry.line.replace('`', chr(39))}`"
        for entry in kube.log_lines
    ]  # fmt: skip
    return ["", "## Logs at triage", *quoted]


def _configuration(report: IncidentReport) -> list[str]:
    """The ConfigMap against the live CONFIG, and whether a restart kept the data."""
    kube = report.diagnosis.kubernetes
    drift = config_drift(report.diagnosis)
    lines: list[str] = []
    if drift:
        lines += ["", "## Configuration drift", *[f"- {d}" for d in drift]]
    elif kube is not None and kube.configured is not None:
        lines += ["", "## Configuration", f"- the live settings match {kube.config_source}"]
    data = data_after_restart(report.diagnosis, report.verification, report.steps)
    if data:
        lines += ["", "## Data", f"- {data}"]
    return lines


def render_review(report: IncidentReport, final: bool = True) -> str:
    """`final` False renders a draft of a running incident: no outcome yet."""
    f = report.figures
    outcome = report.outcome if final else "in progress"
    lines = [
        f"# Post-incident review: {report.workflow_id}" + ("" if final else " (draft)"),
        "",
        f"- **Outcome:** {outcome} · **Scenario:** {report.scenario.value} · "
        f"**Mode:** {report.mode.value}",
        f"- **Target:** {report.target.redis_url} "
        f"({report.target.namespace}/{report.target.statefulset})",
        f"- **Started:** {report.started_at:%Y-%m-%d %H:%M:%S} UTC by {report.requested_by} · "
        f"**Finished:** {report.finished_at:%Y-%m-%d %H:%M:%S} UTC",
        "",
        "## What triage saw",
        *[f"- {reason}" for reason in report.reasons or ["no threshold crossed"]],
        "",
        "## Figures",
        "| figure | value |",
        "|---|---|",
        f"| time to detect | {_figure(f.time_to_detect_s)} |",
        f"| time to mitigate | {_figure(f.time_to_mitigate_s)} |",
        f"| time to resolve | {_figure(f.time_to_resolve_s)} |",
        f"| waiting for approval | {_figure(f.approval_wait_s)} |",
        f"| hit rate before / after | {_figure(f.hit_rate_before, '%')} / "
        f"{_figure(f.hit_rate_after, '%')} |",
        f"| keys evicted during the incident | {_figure(f.evictions, '')} |",
        f"| restarts | {f.restarts} |",
        "",
        "## Steps",
        "| step | status | detail |",
        "|---|---|---|",
        *[f"| {s.name.value} | {s.status} | {_cell(s.detail)} |" for s in report.steps],
        "",
        "## Timeline",
        "| time (UTC) | event | who | what |",
        "|---|---|---|---|",
        *[
            f"| {e.at:%H:%M:%S} | {e.kind} | {e.actor or ''} | {_cell(e.message)} |"
            for e in report.timeline
        ],
    ]
    if report.escalations:
        lines += ["", "## Needs a person", *[f"- {e}" for e in report.escalations]]
    if report.temporary:
        lines += ["", "## Changes in memory only", *[f"- {t}" for t in report.temporary]]
    lines += _logs(report) + _configuration(report)
    lines += ["", "## Follow-up checklist", *[f"- [ ] {item}" for item in CHECKLIST]]
    return "\n".join(lines) + "\n"
