"""What people are told during an incident, and where it is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.steps import StepName

NotificationKind = Literal["status_update", "escalation", "approval_request", "final"]
MAX_WORKFLOW_ID = 1000  # Temporal's default limit on workflow id length
IncidentState = Literal["Investigating", "Identified", "Resolving", "Resolved", "Escalated"]


class Notification(BaseModel):
    """The runbook's communication template, filled in by the workflow."""

    workflow_id: str
    kind: NotificationKind
    title: str
    status: IncidentState
    started: datetime
    severity: str
    impact: str
    current_actions: str
    estimated_resolution: str
    next_update: str = Field(default="", description="the update cadence, and when the next is due")
    recipients: list[str] = Field(default_factory=list)
    link: str | None = None
    sent_at: datetime | None = Field(default=None, description="workflow time it was sent")
    pending_steps: list[StepName] = Field(
        default_factory=list,
        description="steps waiting for approval: a Slack message gets Approve / Reject buttons "
        "for each, so the person reading it can decide where they read it",
    )
    incident_run: str = Field(default="", description="the incident's first run id")
    plan_digest: str = Field(default="", description="the plan the buttons decide on")

    def as_text(self) -> str:
        lines = [
            f"*{self.title}*",
            f"Status: {self.status}",
            f"Started: {self.started:%Y-%m-%d %H:%M} UTC",
            f"Severity: {self.severity}",
            f"Impact: {self.impact}",
            f"Current actions: {self.current_actions}",
            f"Estimated resolution: {self.estimated_resolution}",
        ]
        if self.next_update:
            lines.append(f"Next update: {self.next_update}")
        if self.recipients:
            lines.insert(1, "To: " + ", ".join(self.recipients))
        return "\n".join(lines)


class ButtonValue(BaseModel):
    """What an Approve / Reject button carries back to `POST /slack/actions`: which incident
    (its first run: yesterday's message cannot decide today's), which step, on which plan.
    Compact JSON (Slack allows 2,000 characters); who clicked comes from Slack's signed
    payload, never from here."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(min_length=1, max_length=MAX_WORKFLOW_ID)
    step: StepName
    incident_run: str = Field(default="", max_length=64, description="empty in old messages")
    plan_digest: str = Field(default="", max_length=64)

    def encode(self) -> str:
        return self.model_dump_json()


class Channel(BaseModel):
    """A place notifications go. A Slack webhook URL and a PagerDuty routing key are secrets:
    give them by `url_env` and `routing_key_env`. A `pagerduty` channel pages: it gets only
    the escalations whose level names it (`page:`) and the incident's end, never the
    routine status updates."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Literal["slack", "webhook", "log", "pagerduty"]
    url: str | None = None
    url_env: str | None = Field(default=None, description="environment variable with the URL")
    routing_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="pagerduty: environment variable with the integration's routing key",
    )
    events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue",
        description="pagerduty: where events go (PagerDuty's Events API v2 by default)",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _check_kind(self) -> Channel:
        if self.kind == "pagerduty" and not self.routing_key_env:
            raise ValueError(
                f"channel {self.name!r}: a pagerduty channel needs routing_key_env, the "
                "environment variable holding the integration's routing key"
            )
        return self

    @property
    def pages(self) -> bool:
        return self.kind == "pagerduty"
