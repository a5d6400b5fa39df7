"""Tell Slack how a click ended, through the interaction's `response_url`.

The message is replaced (`replace_original`) with its own blocks and the outcome in place of
the step's buttons, so the channel sees who decided and nobody clicks a decided step again.
While the step still waits (a refusal, or the first of two approvals) its buttons stay and the
outcome is shown under them. The URL comes from a signed payload, and is still only posted to
when it starts with a configured prefix (Slack's by default): a leaked signing secret must not
turn this service into a way to reach arbitrary internal URLs.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from activities.notifications.channels import (
    APPROVAL_BLOCK_PREFIX,
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_SECTION_TEXT,
    clip,
    quiet_httpx,
)
from contracts.steps import StepName

log = logging.getLogger("runbook.webhook.slack")

OUTCOME_BLOCK_PREFIX = "outcome:"


def updated_blocks(
    blocks: list[dict[str, Any]], step: StepName, text: str, still_pending: bool
) -> list[dict[str, Any]]:
    """The message's blocks with the outcome of `step` shown where its buttons are."""
    buttons_id = f"{APPROVAL_BLOCK_PREFIX}{step.value}"
    outcome_id = f"{OUTCOME_BLOCK_PREFIX}{step.value}"
    outcome: dict[str, Any] = (
        {"type": "context", "block_id": outcome_id,
         "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}]}
        if still_pending
        else {"type": "section", "block_id": outcome_id,
              "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}
    )  # fmt: skip
    kept = [b for b in blocks if isinstance(b, dict) and b.get("block_id") != outcome_id]
    result: list[dict[str, Any]] = []
    placed = False
    for block in kept:
        if block.get("block_id") != buttons_id:
            result.append(block)
            continue
        if still_pending:
            result.append(block)
        result.append(outcome)
        placed = True
    if not placed:
        result.append(outcome)
    return result[:MAX_BLOCKS]


def replacement(
    blocks: list[dict[str, Any]], step: StepName, text: str, still_pending: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"replace_original": True, "text": clip(text, MAX_FALLBACK_TEXT)}
    if blocks:
        body["blocks"] = updated_blocks(blocks, step, text, still_pending)
    return body


def private_note(text: str) -> dict[str, Any]:
    """Seen only by the person who clicked; the message stays as it is."""
    return {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": clip(text, MAX_FALLBACK_TEXT),
    }


def allowed(url: str | None, prefixes: list[str]) -> bool:
    return url is not None and any(url.startswith(p) for p in prefixes)


async def post(url: str | None, body: dict[str, Any], prefixes: list[str],
               deadline: timedelta) -> bool:  # fmt: skip
    """True when Slack took it; failures are logged (the decision itself stands). The URL is
    a credential for the channel for 30 minutes: logs name its host only."""
    if url is None or not allowed(url, prefixes):
        host = urlsplit(url).netloc if url else "none"
        log.warning("response_url on %r is not under %s: outcome not posted", host, prefixes)
        return False
    quiet_httpx()
    try:
        async with httpx.AsyncClient(timeout=deadline.total_seconds()) as client:
            response = await client.post(url, json=body)
    except httpx.HTTPError as err:
        log.warning("posting the outcome to Slack failed: %s", err)
        return False
    if response.status_code >= 400:
        log.warning("Slack refused the outcome: HTTP %s %s", response.status_code,
                    response.text[:200])  # fmt: skip
        return False
    return True
