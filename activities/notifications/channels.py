"""Deliver notifications: a Slack-compatible incoming webhook (Block Kit), a generic JSON
webhook, or the worker's log. One activity call per channel, so a channel that is down is
retried on its own and never holds back another channel or a remediation step."""

from __future__ import annotations

import logging
import os

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications import pagerduty
from activities.notifications.models import (
    MAX_WORKFLOW_ID,
    ButtonValue,
    Channel,
    Notification,
)
from contracts.steps import StepName

log = logging.getLogger("runbook.notify")


# Slack's Block Kit limits (api.slack.com/reference/block-kit): past them Slack refuses the
# whole message with invalid_blocks, so every text is clipped and buttons are capped.
MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_FALLBACK_TEXT = 3000
# The kinds that go out while an approval can still be given; a final message has none.
KINDS_WITH_BUTTONS = ("approval_request", "status_update", "escalation")
APPROVAL_BLOCK_PREFIX = "approval:"  # block_id of a step's buttons: approval:<step>


def quiet_httpx() -> None:
    """httpx logs every request's full URL at INFO, and here the URL is the secret: a Slack
    incoming webhook (hence `url_env`) or an interaction's response_url. Its warnings stay."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, object]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def _plain(text: str, limit: int) -> dict[str, object]:
    return {"type": "plain_text", "text": clip(text, limit)}


def approval_buttons(
    workflow_id: str, step: StepName, incident_run: str = "", plan_digest: str = ""
) -> dict[str, object] | None:
    """The Approve / Reject pair of one pending step, or None when the incident id is too long
    to fit Slack's button value (the message still goes out, without buttons)."""
    if len(workflow_id) > MAX_WORKFLOW_ID:
        return None
    value = ButtonValue(
        workflow_id=workflow_id, step=step, incident_run=incident_run, plan_digest=plan_digest
    ).encode()
    if len(value) > MAX_BUTTON_VALUE:
        return None
    confirm = {
        "title": _plain(f"Approve {step.value}?", MAX_CONFIRM_TITLE),
        "text": _plain(f"{step.value} on {workflow_id}, approved as you.", MAX_CONFIRM_TEXT),
        "confirm": _plain("Approve", 30),
        "deny": _plain("Cancel", 30),
    }
    return {
        "type": "actions",
        "block_id": clip(f"{APPROVAL_BLOCK_PREFIX}{step.value}", 255),
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": _plain(f"Approve {step.value}", MAX_BUTTON_TEXT),
                "style": "primary",
                "value": value,
                "confirm": confirm,
            },
            {
                "type": "button",
                "action_id": "reject",
                "text": _plain(f"Reject {step.value}", MAX_BUTTON_TEXT),
                "style": "danger",
                "value": value,
            },
        ],
    }


def slack_message(n: Notification) -> dict[str, object]:
    fields = [
        ("Status", n.status),
        ("Severity", n.severity),
        ("Started", f"{n.started:%Y-%m-%d %H:%M} UTC"),
        ("Estimated resolution", n.estimated_resolution),
        *([("Next update", n.next_update)] if n.next_update else []),
    ]
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": _plain(n.title, MAX_HEADER)},
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{k}:*\n{v}", MAX_FIELD_TEXT) for k, v in fields],
        },
        {"type": "section", "text": _mrkdwn(f"*Impact:* {n.impact}")},
        {"type": "section", "text": _mrkdwn(f"*Now:* {n.current_actions}")},
    ]
    context = [f"`{n.workflow_id}`"] + ([f"<{n.link}|open in Temporal>"] if n.link else [])
    if n.recipients:
        context.insert(0, "to " + ", ".join(n.recipients))
    blocks.append({"type": "context", "elements": [_mrkdwn(" · ".join(context))]})
    if n.kind in KINDS_WITH_BUTTONS:
        for step in dict.fromkeys(n.pending_steps):
            buttons = approval_buttons(n.workflow_id, step, n.incident_run, n.plan_digest)
            if buttons is not None and len(blocks) < MAX_BLOCKS:
                blocks.append(buttons)
    return {"text": clip(n.as_text(), MAX_FALLBACK_TEXT), "blocks": blocks}


async def page(config: Channel, notification: Notification) -> str:
    """One Events API v2 event. PagerDuty answers 202; a 400 is an event it will never take
    (a bad routing key or field), so it fails at once; 429 and 5xx are retried."""
    key = os.environ.get(config.routing_key_env or "", "")
    if not key:
        raise ApplicationError(
            f"channel {config.name!r} has no routing key: set {config.routing_key_env}",
            type="ChannelMisconfigured",
            non_retryable=True,
        )
    body = pagerduty.event(notification, key)
    async with httpx.AsyncClient(timeout=config.timeout_s) as client:
        response = await client.post(config.events_url, json=body)
    if response.status_code == 400:
        raise ApplicationError(
            f"{config.name}: PagerDuty refused the event: {response.text[:300]}",
            type="PageRefused",
            non_retryable=True,
        )
    if response.status_code >= 300:
        raise RuntimeError(f"{config.name}: HTTP {response.status_code} {response.text[:200]}")
    return f"{body['event_action']} {body['dedup_key']} ({response.status_code})"


class NotificationActivities:
    def __init__(self, channels: list[Channel]) -> None:
        self._channels = {c.name: c for c in channels}

    @activity.defn(name="notify")
    async def notify(self, channel: str, notification: Notification) -> str:
        config = self._channels.get(channel)
        if config is None:
            raise ApplicationError(
                f"no notification channel {channel!r}", type="UnknownChannel", non_retryable=True
            )
        if config.kind == "log":
            log.info("%s\n%s", notification.kind, notification.as_text())
            return "logged"
        if config.pages:
            return await page(config, notification)
        url = config.url or os.environ.get(config.url_env or "", "")
        if not url:
            raise ApplicationError(
                f"channel {channel!r} has no URL: set {config.url_env or 'url'}",
                type="ChannelMisconfigured",
                non_retryable=True,
            )
        body = (
            slack_message(notification)
            if config.kind == "slack"
            else notification.model_dump(mode="json")
        )
        quiet_httpx()
        async with httpx.AsyncClient(timeout=config.timeout_s) as client:
            response = await client.post(url, json=body)
        if response.status_code >= 400:
            # A 4xx is usually config (a revoked URL): still retried, a person may fix it.
            raise RuntimeError(f"{channel}: HTTP {response.status_code} {response.text[:200]}")
        return f"sent ({response.status_code})"
