"""`runbook status | approve | reject | abort | report | list`: follow an incident, decide its
steps, stop it. Each takes --json: one JSON object on stdout, errors included."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.decisions import Decision
from contracts.incident import WORKFLOW_TYPE, IncidentReport, IncidentStatus, TimelineEntry
from contracts.steps import StepName
from worker.cli.common import CommandFailed, UsageError, connect_or_explain, emit
from worker.cli.follow import follow
from worker.cli.front_door import decide_with_token
from worker.cli.render import approval_commands, render_step
from worker.settings.runbook import Settings


def add_parsers(sub: Any) -> None:
    status = sub.add_parser("status", help="phase, plan and pending approvals of an incident")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true", help="the status as JSON")
    status.add_argument(
        "--follow", action="store_true", help="a live view until it ends (on stderr with --json)"
    )
    status.set_defaults(handler=show_status)
    for verb in ("approve", "reject"):
        cmd = sub.add_parser(verb, help=f"{verb} a step of an incident")
        cmd.add_argument("workflow_id")
        cmd.add_argument("step", help="the step name, e.g. flush")
        cmd.add_argument("--as", dest="approver", help="who decides (default: $RUNBOOK_USER)")
        cmd.add_argument("--comment", default="")
        cmd.add_argument("--json", action="store_true", help="the verdict as JSON")
        cmd.set_defaults(handler=decide, decision=verb)
    abort = sub.add_parser("abort", help="stop an incident after its current step")
    abort.add_argument("workflow_id")
    abort.add_argument("--as", dest="by", help="who stops it (default: $RUNBOOK_USER)")
    abort.add_argument("--reason", default="")
    abort.add_argument(
        "--keep-fallback",
        action="store_true",
        help="leave the API on the database (default: give it back its cache and replicas)",
    )
    abort.add_argument("--json", action="store_true", help="the outcome as JSON")
    abort.set_defaults(handler=abort_incident)
    report = sub.add_parser("report", help="the post-incident review (Markdown) of an incident")
    report.add_argument("workflow_id")
    report.add_argument("--json", action="store_true", help="the whole report as JSON")
    report.add_argument(
        "--format",
        choices=["markdown", "html", "json"],
        default="markdown",
        help="html: one page with the timeline chart; markdown with --out: the chart beside it",
    )
    report.add_argument("--out", type=Path, help="write to this file instead of stdout")
    report.set_defaults(handler=show_report)
    listing = sub.add_parser("list", help="open incidents (--all: recent closed ones too)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true", help='{"incidents": [...]}')
    listing.set_defaults(handler=list_incidents)


async def _status(client: Client, workflow_id: str) -> IncidentStatus:
    try:
        status: IncidentStatus = await client.get_workflow_handle(workflow_id).query(
            "status", result_type=IncidentStatus
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise UsageError(f"no incident {workflow_id!r}: `runbook list` shows them") from None
        if "no poller" in str(err):
            raise UsageError(
                f"no worker answers for {workflow_id!r}: start one (`runbook worker`)"
            ) from None
        raise
    return status


VERIFIED_ONLY_HINT = (
    "  takes a verified approval: `runbook approve` with an ID token (cli.approvals_url), or "
    "the Slack button; a typed name is refused"
)


def render_status(workflow_id: str, status: IncidentStatus) -> str:
    scenario = status.scenario.value if status.scenario else "(triaging)"
    lines = [f"Incident {workflow_id}", f"  phase: {status.phase}   scenario: {scenario}"]
    if status.incident_run:
        lines.append(f"  run: {status.incident_run}   plan: {status.plan_digest}")
    lines += [f"  why: {reason}" for reason in status.reasons]
    if status.plan:
        lines.append("Plan:")
        lines += [render_step(i, s) for i, s in enumerate(status.plan, 1)]
    for p in status.pending_approvals:
        got = ", ".join(p.approved_by) or "nobody yet"
        lines += [
            f"Waiting for approval: {p.step.value} since {p.since:%H:%M:%S} UTC "
            f"({len(p.approved_by)}/{p.approvals_needed}, approved by {got})",
            f"  will: {p.action}",
            f"  because: {p.reason}",
        ]
        if p.verified_only:
            lines.append(VERIFIED_ONLY_HINT)
        lines += [f"  $ {command}" for command in approval_commands(workflow_id, p)]
    refused = [e for e in status.timeline if e.kind == "approval_refused"]
    lines += [f"Refused: {e.actor}: {e.message}" for e in refused[-5:]]
    return "\n".join(lines)


async def show_status(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect_or_explain(settings)
    status = await _status(client, args.workflow_id)
    if args.follow:
        from rich.console import Console

        status = await follow(
            args.workflow_id,
            lambda: _status(client, args.workflow_id),
            lambda: datetime.now(UTC),
            console=Console(stderr=True) if args.json else None,  # stdout keeps one object
        )
    print(
        status.model_dump_json(indent=2) if args.json else render_status(args.workflow_id, status)
    )
    return 0


def _who(given: str | None) -> str:
    who = given or os.environ.get("RUNBOOK_USER")
    if not who:
        raise UsageError("say who you are: --as NAME (or set RUNBOOK_USER)")
    return who


def _decision(args: argparse.Namespace) -> Decision:
    approver = _who(args.approver)
    if args.step not in {s.value for s in StepName}:
        raise UsageError(
            f"unknown step {args.step!r}: one of {', '.join(s.value for s in StepName)}"
        )
    return Decision.model_validate(
        {
            "step": args.step,
            "approver": approver,
            "comment": args.comment,
            "decision": args.decision,
        }
    )


async def decide(args: argparse.Namespace, settings: Settings) -> int:
    """Uses the `decide` update, so the person learns at once whether it counted, and why not;
    through the approvals endpoint (an ID token proves who you are) when one is configured."""
    if settings.cli.approvals_url:
        return await decide_with_token(args, settings)
    decision = _decision(args)
    client = await connect_or_explain(settings)
    await _status(client, args.workflow_id)
    handle = client.get_workflow_handle(args.workflow_id)
    asked = {
        "workflow_id": args.workflow_id,
        "step": decision.step.value,
        "decision": decision.decision,
        "approver": decision.approver,
    }
    try:
        verdict = await handle.execute_update("decide", decision, result_type=str)
    except WorkflowUpdateFailedError as err:
        reason = str(getattr(err.cause, "message", err.cause))
        raise CommandFailed(f"refused: {reason}", accepted=False, **asked) from None
    emit(args.json, {**asked, "accepted": True, "verdict": verdict}, verdict)
    return 0


def _entries(status: IncidentStatus, kind: str) -> list[TimelineEntry]:
    return [e for e in status.timeline if e.kind == kind]


async def abort_incident(args: argparse.Namespace, settings: Settings) -> int:
    """`abort` is a signal, which cannot answer: the outcome is read back from the
    incident's timeline, so the person learns whether it took."""
    by = _who(args.by)
    client = await connect_or_explain(settings)
    before = await _status(client, args.workflow_id)
    asked = {"workflow_id": args.workflow_id, "by": by, "reason": args.reason,
             "restore_api": not args.keep_fallback}  # fmt: skip
    if before.phase == "done":
        raise CommandFailed("refused: the incident has ended", accepted=False, **asked)
    if earlier := _entries(before, "abort"):
        raise CommandFailed(f"refused: already aborted by {earlier[0].actor}", accepted=False,
                            **asked)  # fmt: skip
    payload = {"by": by, "reason": args.reason, "restore_api": not args.keep_fallback}
    await client.get_workflow_handle(args.workflow_id).signal("abort", payload)
    refusals = len(_entries(before, "abort_refused"))
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        now = await _status(client, args.workflow_id)
        if taken := _entries(now, "abort"):
            text = "abort accepted: the current step finishes, the rest are skipped" + (
                "" if args.keep_fallback else "; a fallback API gets its cache back"
            )
            emit(args.json, {**asked, "accepted": True, "message": taken[0].message}, text)
            return 0
        if len(refused := _entries(now, "abort_refused")) > refusals:
            raise CommandFailed(f"refused: {refused[-1].message}", accepted=False, **asked)
        if now.phase == "done":
            raise CommandFailed("refused: the incident ended first", accepted=False, **asked)
        await asyncio.sleep(0.2)
    raise CommandFailed(
        f"abort sent, not confirmed within 20s. Fix: check `runbook status {args.workflow_id}`",
        accepted=None,
        **asked,
    )


async def list_incidents(args: argparse.Namespace, settings: Settings) -> int:
    query = f"WorkflowType='{WORKFLOW_TYPE}'"
    if not args.all:
        query += " AND ExecutionStatus='Running'"
    client = await connect_or_explain(settings)
    rows = [
        {
            "workflow_id": w.id,
            "status": w.status.name if w.status else "?",
            "started": w.start_time.isoformat(timespec="seconds"),
        }
        async for w in client.list_workflows(query, limit=100)
    ]
    if args.json:
        emit(True, {"incidents": rows}, "")
        return 0
    if not rows:
        print("no open incidents" if not args.all else "no incidents")
    for row in rows:
        print(f"{row['started']}  {row['status']:<11} {row['workflow_id']}")
    return 0


async def show_report(args: argparse.Namespace, settings: Settings) -> int:
    """The final review of a closed incident, or the draft of a running one."""
    client = await connect_or_explain(settings)
    handle = client.get_workflow_handle(args.workflow_id, result_type=IncidentReport)
    try:
        running = (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise UsageError(f"no incident {args.workflow_id!r}") from None
        raise
    if running:
        status = await _status(client, args.workflow_id)
        print(status.model_dump_json(indent=2) if args.json else status.review)
        return 0
    try:
        report = await handle.result()
    except WorkflowFailureError as err:
        raise UsageError(f"{args.workflow_id} failed, it has no report: {err.cause}") from None
    fmt = "json" if args.json else args.format
    if fmt == "json":
        return _write(args.out, report.model_dump_json(indent=2))
    if fmt == "markdown" and args.out is None:
        return _write(None, report.review)
    try:
        from worker.report.charts import timeline_svg
        from worker.report.page import report_page
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise UsageError(f"charts need matplotlib ({err}). Fix: pip install "
                         "'redis-runbook[report]'") from None  # fmt: skip
    if fmt == "html":
        return _write(args.out, report_page(report))
    chart = args.out.with_name(f"{args.out.stem}-timeline.svg")
    chart.write_text(timeline_svg(report))
    return _write(args.out, f"{report.review}\n\n## Timeline\n\n![Timeline]({chart.name})\n")


def _write(out: Path | None, text: str) -> int:
    if out is None:
        print(text)
    else:
        out.write_text(text if text.endswith("\n") else text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 0
