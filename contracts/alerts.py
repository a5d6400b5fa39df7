"""Alerts as every source is normalised to: what the webhook signals into an incident."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.base import Contract


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(Contract):
    """An alert from any source, normalised."""

    source: str = Field(min_length=1, description="alertmanager, grafana, pagerduty, cli, ...")
    name: str = Field(min_length=1)
    status: AlertStatus = AlertStatus.FIRING
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    fingerprint: str = Field(min_length=1)


class AlertSummary(BaseModel):
    """How many alerts an incident saw: `alerts` lists the first `shown` of them whole."""

    distinct: int = Field(default=0, description="fingerprints")
    firing: int = 0
    resolved: int = 0
    deliveries: int = Field(default=0, description="alerts received, repeats included")
    shown: int = 0
    untracked: int = Field(default=0, description="fingerprints past the ledger's bound")
