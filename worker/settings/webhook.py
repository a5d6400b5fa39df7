"""The `webhook:` section of runbook.yaml: how the alert intake answers, dedupes and checks who
is calling. Secrets are not here (they are top-level `*_secret` fields read from the
environment or files, see worker/settings/runbook.py); this section only says which mechanism each
source may use, so a Grafana that signs its payloads is never let in by a leaked bearer token
unless the operator says so.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from activities.policy import Duration
from contracts.incident import Mode


class AlertSource(StrEnum):
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    GENERIC = "generic"


class AuthMechanism(StrEnum):
    BEARER = "bearer"  # Authorization: Bearer <RUNBOOK_WEBHOOK_TOKEN>
    BASIC = "basic"  # Authorization: Basic <basic_username:RUNBOOK_WEBHOOK_BASIC_PASSWORD>
    HMAC = "hmac"  # Grafana X-Grafana-Alerting-Signature, PagerDuty X-PagerDuty-Signature


SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


def _slack_user_id(value: str) -> str:
    if not SLACK_USER_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Slack user id: write the member id (like U0123ABCD, from the "
            "user's Slack profile, 'Copy member ID'), not a display name"
        )
    return value


def _approver(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError(f"{value!r}: write the approver name without surrounding spaces")
    return value


SlackUserId = Annotated[str, AfterValidator(_slack_user_id)]
Approver = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_approver)]


class SlackSettings(BaseModel):
    """Approve / Reject buttons in Slack (`POST /slack/actions`). The signing secret is not
    here (RUNBOOK_SLACK_SIGNING_SECRET or _FILE); this says who a Slack user is as an approver.
    Identity comes only from this mapping: a Slack display name can be changed by its owner,
    a user id cannot, and the policy's allow-list and four eyes are checked on the mapped name."""

    model_config = ConfigDict(extra="forbid")

    approvers: dict[SlackUserId, Approver] = Field(
        default_factory=dict,
        description="Slack user id (U0123ABC) -> approver identity, as `runbook approve --as`",
    )
    max_age: Duration = Field(
        default=timedelta(minutes=5),
        description="freshness window of X-Slack-Request-Timestamp, both ways (replays, clocks)",
    )
    decide_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="how long a decision may take in the workflow before Slack is told it did not",
    )
    response_url_prefixes: list[str] = Field(
        default_factory=lambda: ["https://hooks.slack.com/"],
        min_length=1,
        description="the only places the outcome is posted to (Slack's response_url)",
    )

    @field_validator("max_age")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=30) <= value <= timedelta(minutes=15):
            raise ValueError("must be between 30s and 15m (Slack's own advice is 5m)")
        return value

    @field_validator("decide_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
            raise ValueError("must be between 1s and 10m")
        return value

    @field_validator("response_url_prefixes")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix.startswith(("https://", "http://")) or prefix.count("/") < 3:
                raise ValueError(
                    f"{prefix!r} must be a URL prefix with its host and a '/' after it, "
                    "like https://hooks.slack.com/"
                )
        return value


def _default_auth() -> dict[AlertSource, list[AuthMechanism]]:
    shared = [AuthMechanism.BEARER, AuthMechanism.BASIC]
    return {
        AlertSource.ALERTMANAGER: list(shared),
        AlertSource.GRAFANA: [AuthMechanism.HMAC, *shared],
        AlertSource.PAGERDUTY: [AuthMechanism.HMAC, *shared],
        AlertSource.GENERIC: list(shared),
    }


class OidcSettings(BaseModel):
    """The approvals endpoint's identity provider: an ID token is verified against its JWKS
    (signature, issuer, audience, expiry) and the approver is one of its claims."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str = Field(min_length=1, description="the provider's JSON Web Key Set")
    approver_claim: str = Field(default="email", min_length=1)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    leeway: Duration = Field(default=timedelta(seconds=30), description="clock skew allowed")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        """A token is checked against the provider's public keys: `none` and the HMAC
        algorithms would let anyone holding public material sign one."""
        bad = [a for a in algorithms if not a.startswith(("RS", "ES", "PS", "Ed"))]
        if bad:
            raise ValueError(f"not an asymmetric signature algorithm: {', '.join(bad)}")
        return algorithms


class WebhookSettings(BaseModel):
    """Defaults suit Alertmanager's retry behaviour: answer fast, 503 when Temporal is away."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(
        default=Mode.AUTO, description="mode of the incidents the webhook starts (auto|dry-run)"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    dedupe_window: Duration = Field(
        default=timedelta(seconds=60),
        description="a repeated (alert, status) is sent to Temporal at most once per window",
    )
    dedupe_max_entries: int = Field(default=100_000, ge=1)
    temporal_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="deadline of one Temporal call; past it the delivery is answered 503",
    )
    auth: dict[AlertSource, list[AuthMechanism]] = Field(default_factory=_default_auth)
    basic_username: str = Field(default="runbook", min_length=1)
    grafana_signature_header: str = "X-Grafana-Alerting-Signature"
    grafana_timestamp_header: str | None = Field(
        default=None,
        description="when Grafana is set to send one, the signature covers '<timestamp>:' + body",
    )
    grafana_max_age: Duration = Field(
        default=timedelta(minutes=5), description="freshness window of the signed timestamp"
    )
    slack: SlackSettings = Field(default_factory=SlackSettings)
    oidc: OidcSettings | None = Field(
        default=None, description="set, the webhook serves POST /approvals (Bearer ID tokens)"
    )
    attestation_ttl: Duration = Field(
        default=timedelta(minutes=5),
        description="how long a front door's signed decision stays good on its way to the worker",
    )

    def mechanisms(self, source: AlertSource) -> list[AuthMechanism]:
        return self.auth.get(source, _default_auth()[source])
