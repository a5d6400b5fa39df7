"""What each alert source sends, and how it becomes the project's `Alert`.

The source models ignore unknown fields on purpose (newer Alertmanagers add
`notification_reason`, `routeLabels`; Grafana adds fields every release): a field we do not
read must never turn a real alert into a 4xx, because a 4xx makes the sender drop it.
Everything here is pure: bytes in, `Delivery` out, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.alerts import Alert, AlertStatus
from worker.settings.webhook import AlertSource

TRUNCATED_ANNOTATION = "runbook/truncated_alerts"
ZERO_TIME_YEAR = 1  # Alertmanager and Grafana send 0001-01-01T00:00:00Z for "no time"


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AlertmanagerAlert(Lenient):
    status: AlertStatus = AlertStatus.FIRING
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerPayload(Lenient):
    """Alertmanager's webhook payload, version 4."""

    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    status: AlertStatus = AlertStatus.FIRING
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(max_length=10_000)


class GrafanaAlert(AlertmanagerAlert):
    values: dict[str, Any] | None = None
    valueString: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    silenceURL: str = ""
    ruleUID: str = ""


class GrafanaPayload(AlertmanagerPayload):
    """Grafana's webhook contact point: Alertmanager's fields plus its own."""

    version: str = "1"
    orgId: int | None = None
    title: str = ""
    state: str = ""
    message: str = ""
    alerts: list[GrafanaAlert] = Field(max_length=10_000)  # type: ignore[assignment]


class PagerDutyReference(Lenient):
    id: str = ""
    summary: str = ""
    type: str = ""
    html_url: str = ""


class PagerDutyIncident(Lenient):
    id: str = ""
    type: str = ""
    number: int | None = None
    status: str = ""
    incident_key: str | None = None
    title: str = ""
    urgency: str = ""
    html_url: str = ""
    service: PagerDutyReference | None = None
    priority: PagerDutyReference | None = None


class PagerDutyEvent(Lenient):
    id: str = ""
    event_type: str = Field(min_length=1)
    resource_type: str = ""
    occurred_at: datetime | None = None
    data: PagerDutyIncident | None = None


class PagerDutyWebhook(Lenient):
    """PagerDuty's V3 webhook envelope."""

    event: PagerDutyEvent


GENERIC_ALERTS: TypeAdapter[list[Alert]] = TypeAdapter(list[Alert])

PAGERDUTY_STATUS = {
    "incident.triggered": AlertStatus.FIRING,
    "incident.reopened": AlertStatus.FIRING,
    "incident.resolved": AlertStatus.RESOLVED,
}


class Delivery(BaseModel):
    """One request, normalised: the alerts it carries and what the source told us about it."""

    source: AlertSource
    alerts: list[Alert]
    group_key: str = ""
    truncated_alerts: int = 0
    ignored_reason: str | None = None


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id for an alert whose sender gave none: the same labels, the same alert."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _time(value: datetime | None) -> datetime | None:
    return None if value is None or value.year <= ZERO_TIME_YEAR else value


def _from_alertmanager_like(
    source: AlertSource, payload: AlertmanagerPayload, extra: list[dict[str, str]]
) -> list[Alert]:
    """Labels missing from an alert are filled from the group's common labels (a correct
    payload already repeats them; a partial one still routes)."""
    group = {**payload.groupLabels, **payload.commonLabels}
    alerts = []
    for item, more in zip(payload.alerts, extra, strict=True):
        labels = {**group, **item.labels}
        annotations = {**payload.commonAnnotations, **item.annotations, **more}
        if item.generatorURL:
            annotations.setdefault("generator_url", item.generatorURL)
        if payload.truncatedAlerts:
            annotations[TRUNCATED_ANNOTATION] = str(payload.truncatedAlerts)
        alerts.append(
            Alert(
                source=source.value,
                name=labels.get("alertname") or "unnamed",
                status=item.status,
                labels=labels,
                annotations=annotations,
                starts_at=_time(item.startsAt),
                fingerprint=item.fingerprint or label_fingerprint(labels),
            )
        )
    return alerts


def parse_alertmanager(body: bytes) -> Delivery:
    payload = AlertmanagerPayload.model_validate_json(body)
    extra: list[dict[str, str]] = [{} for _ in payload.alerts]
    return Delivery(
        source=AlertSource.ALERTMANAGER,
        alerts=_from_alertmanager_like(AlertSource.ALERTMANAGER, payload, extra),
        group_key=payload.groupKey,
        truncated_alerts=payload.truncatedAlerts,
    )


def parse_grafana(body: bytes) -> Delivery:
    payload = GrafanaPayload.model_validate_json(body)
    extra = [
        {
            key: value
            for key, value in (
                ("grafana_value_string", item.valueString),
                ("grafana_dashboard_url", item.dashboardURL),
                ("grafana_panel_url", item.panelURL),
                ("grafana_silence_url", item.silenceURL),
                ("grafana_rule_uid", item.ruleUID),
            )
            if value
        }
        for item in payload.alerts
    ]
    return Delivery(
        source=AlertSource.GRAFANA,
        alerts=_from_alertmanager_like(AlertSource.GRAFANA, payload, extra),
        group_key=payload.groupKey,
        truncated_alerts=payload.truncatedAlerts,
    )


def pagerduty_labels(incident: PagerDutyIncident) -> dict[str, str]:
    """The labels a PagerDuty incident is routed on (match them in `targets`): `service` (the
    service's name), `service_id`, `alertname` (the incident title), `incident_key`,
    `urgency`, `priority`, `pagerduty_incident` (its id)."""
    service = incident.service or PagerDutyReference()
    labels = {
        "alertname": incident.title,
        "service": service.summary,
        "service_id": service.id,
        "incident_key": incident.incident_key or "",
        "urgency": incident.urgency,
        "priority": incident.priority.summary if incident.priority else "",
        "pagerduty_incident": incident.id,
    }
    return {key: value for key, value in labels.items() if value}


def parse_pagerduty(body: bytes) -> Delivery:
    event = PagerDutyWebhook.model_validate_json(body).event
    status = PAGERDUTY_STATUS.get(event.event_type)
    if status is None:
        reason = f"event type {event.event_type!r} does not open or resolve an incident"
        return Delivery(source=AlertSource.PAGERDUTY, alerts=[], ignored_reason=reason)
    incident = event.data
    if incident is None or not (incident.id or incident.incident_key):
        raise ValueError(f"{event.event_type} without event.data.id or incident_key")
    labels = pagerduty_labels(incident)
    annotations = {"summary": incident.title} if incident.title else {}
    if incident.html_url:
        annotations["pagerduty_url"] = incident.html_url
    alert = Alert(
        source=AlertSource.PAGERDUTY.value,
        name=incident.title or "PagerDuty incident",
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=event.occurred_at if status is AlertStatus.FIRING else None,
        fingerprint=f"pagerduty:{incident.id or incident.incident_key}",
    )
    return Delivery(source=AlertSource.PAGERDUTY, alerts=[alert], group_key=incident.id)


def parse_generic(body: bytes) -> Delivery:
    return Delivery(source=AlertSource.GENERIC, alerts=GENERIC_ALERTS.validate_json(body))


PARSERS = {
    AlertSource.ALERTMANAGER: parse_alertmanager,
    AlertSource.GRAFANA: parse_grafana,
    AlertSource.PAGERDUTY: parse_pagerduty,
    AlertSource.GENERIC: parse_generic,
}

REQUEST_MODELS: dict[AlertSource, Any] = {
    AlertSource.ALERTMANAGER: AlertmanagerPayload,
    AlertSource.GRAFANA: GrafanaPayload,
    AlertSource.PAGERDUTY: PagerDutyWebhook,
    AlertSource.GENERIC: list[Alert],
}
