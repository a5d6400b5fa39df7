"""`runbook start`: an incident by hand, validated before anything is started."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy

from contracts.incident import WORKFLOW_TYPE, Incident, IncidentReport, Mode
from worker.cli.common import CommandFailed, UsageError, connect_or_explain, emit
from worker.cli.render import render_report
from worker.settings.runbook import ConfigError, Settings


def add_parser(sub: Any) -> None:
    start = sub.add_parser("start", help="start an incident for one Redis")
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--target", help="a target name from runbook.yaml")
    source.add_argument(
        "--redis-url", help="the redis:// URL of a target in runbook.yaml (no password in it)"
    )
    source.add_argument("--input", help="the whole Incident as JSON, or @file.json")
    start.add_argument("--namespace", help="with --redis-url: must be the target's")
    start.add_argument("--statefulset", help="with --redis-url: must be the target's")
    start.add_argument("--api-deployment", help="with --redis-url: must be the target's")
    start.add_argument("--dry-run", action="store_true", help="diagnose and plan, change nothing")
    start.add_argument("--requested-by", help="who asks (default: $RUNBOOK_USER or login name)")
    start.add_argument("--workflow-id", help="override the workflow id")
    start.add_argument("--wait", action="store_true", help="wait and print the report")
    start.add_argument(
        "--json", action="store_true", help="one JSON object: the ids (and with --wait, the report)"
    )
    start.set_defaults(handler=run)


def _raw_input(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    if args.input:
        text = args.input
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text()
            except OSError as err:
                raise UsageError(f"cannot read {text[1:]}: {err.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"--input is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise UsageError("--input must be a JSON object with a 'target'")
        if "carried" in data:
            raise UsageError(
                "--input must not set `carried`: the workflow sets it itself when it continues "
                "as new, and refuses it from anyone else. Remove the field"
            )
        return data
    try:
        route = (
            settings.target_named(args.target)
            if args.target
            else settings.target_with_url(args.redis_url)
        )
    except ConfigError as err:
        raise UsageError(str(err)) from None
    target = route.to_target()
    for flag in ("namespace", "statefulset", "api_deployment"):
        given = getattr(args, flag, None)
        if given is not None and given != getattr(target, flag):
            raise UsageError(
                f"--{flag.replace('_', '-')} {given} differs from target {route.name}'s "
                f"{getattr(target, flag)}: the worker acts on targets as runbook.yaml has them"
            )
    return {"target": target.model_dump(), "mode": Mode.DRY_RUN if args.dry_run else Mode.AUTO}


def build_incident(args: argparse.Namespace, settings: Settings) -> Incident:
    data = _raw_input(args, settings)
    if args.dry_run:
        data["mode"] = Mode.DRY_RUN
    data.setdefault(
        "requested_by", args.requested_by or os.environ.get("RUNBOOK_USER") or getpass.getuser()
    )
    try:
        incident = Incident.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise UsageError(f"invalid incident: {problems}") from None
    if settings.route_for(incident.target) is None:
        raise UsageError(f"{settings.unknown_target(incident.target)}")
    return incident


def workflow_id_for(incident: Incident, override: str | None) -> str:
    """Dry runs get their own id so they never attach to, or block, the live incident."""
    if override:
        return override
    base = incident.target.workflow_id
    if incident.mode is Mode.DRY_RUN:
        return f"{base}/dry-run-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    return base


async def run(args: argparse.Namespace, settings: Settings) -> int:
    incident = build_incident(args, settings)
    client = await connect_or_explain(settings)
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        incident,
        id=workflow_id_for(incident, args.workflow_id),
        task_queue=settings.temporal.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=IncidentReport,
    )
    started: dict[str, Any] = {
        "workflow_id": handle.id,
        "run_id": handle.result_run_id,
        "mode": incident.mode.value,
    }
    if not args.wait:
        emit(args.json, started, f"started workflow {handle.id}")
        return 0
    if not args.json:
        print(f"started workflow {handle.id}", flush=True)
    try:
        report = await handle.result()
    except WorkflowFailureError as err:
        raise CommandFailed(f"error: workflow {handle.id} failed: {err.cause}", **started) from None
    emit(args.json, {**started, "report": report.model_dump(mode="json")}, render_report(report))
    return 0
