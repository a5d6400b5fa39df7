"""`runbook approve | reject` through the webhook's approvals endpoint: the ID token proves who
you are (so `--as` is not needed), and the decision is recorded as `oidc` with that identity.
Used whenever `cli.approvals_url` is set."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess

import httpx

from worker.cli.common import CommandFailed, UsageError, emit
from worker.settings.runbook import Settings

TOKEN_ENV = "RUNBOOK_ID_TOKEN"


def id_token(settings: Settings) -> str:
    """RUNBOOK_ID_TOKEN, or what `cli.token_command` prints."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    command = settings.cli.token_command
    if not command:
        raise UsageError(
            f"an ID token is needed to approve through {settings.cli.approvals_url}: set "
            f"{TOKEN_ENV}, or cli.token_command (e.g. `gcloud auth print-identity-token`)"
        )
    try:
        run = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"cli.token_command ({command}) did not run: {err}") from None
    if run.returncode != 0 or not run.stdout.strip():
        why = run.stderr.strip() or f"exit {run.returncode}, no token printed"
        raise UsageError(f"cli.token_command ({command}) printed no token: {why}")
    return run.stdout.strip()


async def decide_with_token(args: argparse.Namespace, settings: Settings) -> int:
    url = f"{(settings.cli.approvals_url or '').rstrip('/')}/approvals"
    body = {
        "workflow_id": args.workflow_id,
        "step": args.step,
        "decision": args.decision,
        "comment": args.comment,
    }
    headers = {"Authorization": f"Bearer {id_token(settings)}"}
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(url, json=body, headers=headers)
    except httpx.HTTPError as err:
        raise CommandFailed(f"the approvals endpoint {url} did not answer: {err}") from None
    data = _json(answer)
    if answer.status_code != 200:
        reason = str(data.get("reason", answer.text))
        raise CommandFailed(f"refused ({answer.status_code}): {reason}", accepted=False, **body)
    verdict = str(data.get("verdict", ""))
    who = f" as {data.get('approver')} (verified by ID token)" if data.get("approver") else ""
    emit(args.json, {**body, **data, "accepted": True}, verdict + who)
    return 0


def _json(answer: httpx.Response) -> dict[str, object]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
