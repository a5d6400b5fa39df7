"""Deliver notifications: a Slack-compatible incoming webhook (Block Kit), a generic JSON
webhook, or the worker's log. One activity call per channel, so a channel that is down is
retried on its own and never holds back another channel or a remediation step."""

from __future__ import annotations

import logging
import os

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify_models import Channel, Notification

log = logging.getLogger("runbook.notify")


def slack_message(n: Notification) -> dict[str, object]:
    fields = [
        ("Status", n.status),
        ("Severity", n.severity),
        ("Started", f"{n.started:%Y-%m-%d %H:%M} UTC"),
        ("Estimated resolution", n.estimated_resolution),
    ]
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.title[:150]}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}:*\n{v}"} for k, v in fields],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Impact:* {n.impact}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Now:* {n.current_actions}"}},
    ]
    context = [f"`{n.workflow_id}`"] + ([f"<{n.link}|open in Temporal>"] if n.link else [])
    if n.recipients:
        context.insert(0, "to " + ", ".join(n.recipients))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    return {"text": n.as_text(), "blocks": blocks}


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
        async with httpx.AsyncClient(timeout=config.timeout_s) as client:
            response = await client.post(url, json=body)
        if response.status_code >= 400:
            # A 4xx is usually config (a revoked URL): still retried, a person may fix it.
            raise RuntimeError(f"{channel}: HTTP {response.status_code} {response.text[:200]}")
        return f"sent ({response.status_code})"
