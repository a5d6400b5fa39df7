"""PagerDuty's Events API v2: how an incident pages a person and how the page is resolved.

One PagerDuty alert per incident: the `dedup_key` is the incident's workflow id, so every
escalation updates the same alert instead of opening another, and the end of the incident
resolves it. An incident that ends escalated (the symptom is still there) leaves its page
open with the final summary: the workflow stopping is not the problem going away.
"""

from __future__ import annotations

from typing import Any

from activities.notifications.models import Notification

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
SEVERITIES = ("critical", "error", "warning", "info")
# Alert severities as teams label them, in PagerDuty's four words.
SEVERITY_WORDS = {"page": "critical", "high": "error", "major": "error", "medium": "warning",
                  "minor": "warning", "low": "info", "none": "info"}  # fmt: skip


def severity(label: str) -> str:
    word = label.strip().lower()
    return word if word in SEVERITIES else SEVERITY_WORDS.get(word, "critical")


def action_of(n: Notification) -> str:
    """resolve only when the incident ended well; everything else (re)triggers."""
    return "resolve" if n.kind == "final" and n.status == "Resolved" else "trigger"


def event(n: Notification, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for one notification."""
    action = action_of(n)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.workflow_id[:MAX_DEDUP_KEY],
    }
    if action == "resolve":
        return body
    summary = f"{n.title} ({n.status}): {n.current_actions}"
    body["payload"] = {
        "summary": summary[:MAX_SUMMARY],
        "source": "redis-runbook",
        "severity": severity(n.severity),
        "timestamp": (n.sent_at or n.started).isoformat(),
        "component": "redis",
        "class": n.kind,
        "custom_details": {
            "status": n.status,
            "started": n.started.isoformat(),
            "impact": n.impact,
            "current_actions": n.current_actions,
            "estimated_resolution": n.estimated_resolution,
            "next_update": n.next_update,
            "paged": n.recipients,
        },
    }
    body["client"] = "redis-runbook"
    if n.link:
        body["client_url"] = n.link
        body["links"] = [{"href": n.link, "text": "The incident in Temporal"}]
    return body
