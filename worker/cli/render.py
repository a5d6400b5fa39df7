"""Plain-text views of a diagnosis, a plan and a report, for terminals and logs."""

from __future__ import annotations

import json
import shlex

from contracts.analysis import Analysis
from contracts.decisions import PendingApproval
from contracts.diagnosis import Diagnosis
from contracts.incident import IncidentReport
from contracts.steps import Step


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def render_diagnosis(d: Diagnosis) -> list[str]:
    lines = [f"Diagnosis of {d.redis_url} at {d.taken_at:%Y-%m-%d %H:%M:%S} UTC"]
    if not d.reachable:
        lines.append("  Redis is NOT reachable")
    if d.ping_p50_ms is not None:
        lines.append(f"  ping p50 {d.ping_p50_ms:.2f} ms, p95 {d.ping_p95_ms:.2f} ms")
    info = d.info
    if info:
        limit = _mb(info.maxmemory) if info.maxmemory else "no limit"
        lines += [
            f"  memory {_mb(info.used_memory)} of {limit} ({info.maxmemory_policy}), "
            f"fragmentation {info.mem_fragmentation_ratio:.2f}, evicted {info.evicted_keys}",
            f"  clients {info.connected_clients} of {info.maxclients}, "
            f"rejected {info.rejected_connections}, blocked {info.blocked_clients}",
            f"  hit rate {info.hit_rate:.0%}" if info.hit_rate is not None else "  hit rate n/a",
            f"  persistence: last bgsave {info.rdb_last_bgsave_status}, "
            f"AOF write {info.aof_last_write_status}",
            f"  role {info.role}, uptime {info.uptime_seconds}s, keys {d.dbsize}",
        ]
    if d.slowlog:
        worst = max(d.slowlog, key=lambda e: e.duration_us)
        lines.append(
            f"  slowlog {len(d.slowlog)} entries, worst {worst.duration_us / 1000:.1f} ms "
            f"({worst.command})"
        )
    lines += [f"  finding [{f.code}]: {f.message}" for f in d.findings]
    return lines


def render_step(index: int, step: Step) -> str:
    flags = []
    if step.destructive:
        flags.append("destructive")
    if step.requires_approval:
        flags.append(f"needs {step.approvals_needed} approval(s)")
    flag_text = f" [{', '.join(flags)}]" if flags else ""
    when = f"\n       when {step.when}" if step.when else ""
    unavailable = "" if step.available else "\n       not available on this worker"
    done = f"\n       -> {step.detail}" if step.detail and step.status != "planned" else ""
    return (
        f"  {index:>2}. {step.name.value:<20} {step.status:<16} {step.title}{flag_text}"
        f"{when}{unavailable}{done}"
    )


def render_report(report: IncidentReport) -> str:
    lines = [
        f"Incident {report.workflow_id}",
        f"  scenario: {report.scenario.value}   outcome: {report.outcome}   "
        f"mode: {report.mode.value}",
    ]
    lines += [f"  why: {reason}" for reason in report.reasons]
    lines += render_diagnosis(report.diagnosis)
    lines += render_analysis(report.analysis)
    lines.append("Plan:")
    lines += [render_step(i, s) for i, s in enumerate(report.steps, 1)]
    lines += [f"Approval: {a.step.value} {'approved' if a.approved else 'rejected'} by "
              f"{a.approver} at {a.at:%H:%M:%S}" for a in report.approvals]  # fmt: skip
    lines += [f"Escalate: {problem}" for problem in report.escalations]
    return "\n".join(lines)


def render_analysis(analysis: Analysis) -> list[str]:
    lines = []
    if analysis.keyspace:
        k = analysis.keyspace
        lines.append(
            f"Keyspace sample: {k.sampled} of {k.dbsize} keys, {k.without_ttl} without TTL"
        )
        lines += [f"  {p.prefix}: {p.keys} keys, {_mb(p.bytes)}" for p in k.prefixes[:5]]
        lines += [f"  finding [{f.code}]: {f.message}" for f in k.findings]
    if analysis.clients:
        c = analysis.clients
        lines.append(f"Clients: {c.total} connections")
        lines += [f"  {g.address} {g.name or '(no name)'}: {g.connections}" for g in c.groups[:5]]
        lines += [f"  finding [{f.code}]: {f.message}" for f in c.findings]
    if analysis.slowlog:
        s = analysis.slowlog
        lines.append(f"Slowlog: {s.entries} entries")
        lines += [f"  {o.duration_ms:.1f} ms {o.command}: {o.advice}" for o in s.offenders[:5]]
    return lines


def approval_commands(workflow_id: str, pending: PendingApproval) -> list[str]:
    """The exact commands that decide a pending step, ready to paste."""
    wid, step = shlex.quote(workflow_id), pending.step.value
    payload = json.dumps({"step": step, "approver": "YOUR-NAME", "decision": "approve"})
    return [
        f"runbook approve {wid} {step} --as YOUR-NAME --comment 'why'",
        f"runbook reject {wid} {step} --as YOUR-NAME --comment 'why'",
        f"temporal workflow update execute --workflow-id {wid} --name decide "
        f"--input {shlex.quote(payload)}",
    ]
