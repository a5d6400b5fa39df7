"""Each source's wire format -> the project's Alert: pure parsing, no server."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from contracts.alerts import AlertStatus
from tests.intake.test_webhook_helpers import (
    alertmanager_payload,
    am_alert,
    grafana_payload,
    pagerduty_event,
)
from worker.intake.sources import (
    TRUNCATED_ANNOTATION,
    label_fingerprint,
    parse_alertmanager,
    parse_generic,
    parse_grafana,
    parse_pagerduty,
)


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def test_alertmanager_mixed_group_keeps_states_and_ignores_new_fields() -> None:
    body = alertmanager_payload(
        [
            am_alert("RedisDown", "a", namespace="prod"),
            am_alert("RedisSlow", "b", "resolved", namespace="prod"),
        ],
        truncated=2,
        notification_reason="repeat",
        routeLabels={"team": "cache"},
    )
    delivery = parse_alertmanager(encode(body))
    first, second = delivery.alerts
    assert (first.name, first.status, second.status) == (
        "RedisDown",
        AlertStatus.FIRING,
        AlertStatus.RESOLVED,
    )
    assert first.starts_at is not None and first.starts_at.microsecond == 123456
    assert delivery.truncated_alerts == 2 and first.annotations[TRUNCATED_ANNOTATION] == "2"
    assert first.annotations["generator_url"].startswith("http://prometheus")
    assert delivery.group_key.endswith('{alertname="RedisDown"}')


def test_missing_labels_and_fingerprint_are_filled_from_the_group() -> None:
    body = {
        "version": "4",
        "commonLabels": {"namespace": "prod", "alertname": "RedisDown"},
        "alerts": [{"status": "firing", "startsAt": "0001-01-01T00:00:00Z"}, {"labels": {}}],
    }
    first, _ = parse_alertmanager(encode(body)).alerts
    assert first.labels == {"namespace": "prod", "alertname": "RedisDown"}
    assert first.fingerprint == label_fingerprint(first.labels)
    assert first.starts_at is None
    bare = parse_alertmanager(encode({"alerts": [{}]})).alerts[0]
    assert bare.name == "unnamed" and bare.labels == {}


def test_grafana_payload_carries_its_own_fields_into_annotations() -> None:
    body = grafana_payload([am_alert("RedisDown", "g", namespace="prod")])
    [alert] = parse_grafana(encode(body)).alerts
    assert alert.source == "grafana"
    assert alert.annotations["grafana_rule_uid"] == "bdx1"
    assert alert.annotations["grafana_value_string"].startswith("[ var='B'")


def test_pagerduty_events_map_to_firing_resolved_or_ignored() -> None:
    triggered = parse_pagerduty(encode(pagerduty_event("incident.triggered", "P1", "Redis down")))
    [alert] = triggered.alerts
    assert alert.status is AlertStatus.FIRING and alert.fingerprint == "pagerduty:P1"
    assert (
        alert.labels["service"] == "Treebeard Redis" and alert.labels["alertname"] == "Redis down"
    )
    assert alert.labels["incident_key"] == "key-P1" and alert.labels["priority"] == "P1"
    resolved = parse_pagerduty(encode(pagerduty_event("incident.resolved", "P1", "Redis down")))
    assert resolved.alerts[0].status is AlertStatus.RESOLVED
    assert resolved.alerts[0].fingerprint == alert.fingerprint
    acked = parse_pagerduty(encode(pagerduty_event("incident.acknowledged", "P1", "x")))
    assert acked.alerts == [] and "does not open" in (acked.ignored_reason or "")
    ping = parse_pagerduty(encode({"event": {"event_type": "pagey.ping"}}))
    assert ping.alerts == []


def test_generic_is_the_strict_alert_contract() -> None:
    alert = {"source": "cron", "name": "RedisDown", "fingerprint": "f", "status": "resolved"}
    [parsed] = parse_generic(encode([alert])).alerts
    assert parsed.status is AlertStatus.RESOLVED
    with pytest.raises(ValidationError):
        parse_generic(encode([{**alert, "severity": "x"}]))
    with pytest.raises(ValidationError):
        parse_alertmanager(b"{not json")
