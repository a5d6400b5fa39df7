"""The `webhook:` section of runbook.yaml: how the alert intake answers, dedupes and checks who
is calling. Secrets are not here (they are top-level `*_secret` fields read from the
environment or files, see worker/settings.py); this section only says which mechanism each
source may use, so a Grafana that signs its payloads is never let in by a leaked bearer token
unless the operator says so.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from activities.models import Mode
from activities.policy import Duration


class AlertSource(StrEnum):
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    GENERIC = "generic"


class AuthMechanism(StrEnum):
    BEARER = "bearer"  # Authorization: Bearer <RUNBOOK_WEBHOOK_TOKEN>
    BASIC = "basic"  # Authorization: Basic <basic_username:RUNBOOK_WEBHOOK_BASIC_PASSWORD>
    HMAC = "hmac"  # Grafana X-Grafana-Alerting-Signature, PagerDuty X-PagerDuty-Signature


def _default_auth() -> dict[AlertSource, list[AuthMechanism]]:
    shared = [AuthMechanism.BEARER, AuthMechanism.BASIC]
    return {
        AlertSource.ALERTMANAGER: list(shared),
        AlertSource.GRAFANA: [AuthMechanism.HMAC, *shared],
        AlertSource.PAGERDUTY: [AuthMechanism.HMAC, *shared],
        AlertSource.GENERIC: list(shared),
    }


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

    def mechanisms(self, source: AlertSource) -> list[AuthMechanism]:
        return self.auth.get(source, _default_auth()[source])
