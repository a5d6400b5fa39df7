"""The contracts refuse what would break an incident later, with a reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.incident import Incident, Mode
from contracts.target import RedisTarget


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://r:6379/0", "scheme must be redis:// or rediss://"),
        ("redis://:hunter2@r:6379/0", "RUNBOOK_REDIS_PASSWORD"),
        ("redis://r:99999/0", "bad port"),
        ("redis://r:6379/cache", "database must be a number"),
        ("redis:///0", "has no host"),
    ],
)
def test_bad_redis_urls_are_refused_with_the_fix(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        RedisTarget(redis_url=url)


def test_target_parts() -> None:
    target = RedisTarget(redis_url="rediss://r.example:6380/3", namespace="treebeard-production")
    assert target.db == 3
    assert target.workflow_id == "redis-cache-failure/treebeard-production/redis"
    assert RedisTarget(redis_url="redis://r").db == 0


def test_incident_defaults_and_unknown_fields() -> None:
    incident = Incident.model_validate({"target": {"redis_url": "redis://r:6379/0"}})
    assert incident.mode is Mode.AUTO and incident.alerts == []
    with pytest.raises(ValidationError, match=r"Extra inputs"):
        Incident.model_validate({"target": {"redis_url": "redis://r/0"}, "priority": "high"})
    with pytest.raises(ValidationError, match="namespace"):
        RedisTarget(redis_url="redis://r", namespace="Treebeard_Production")


def test_incident_round_trips_as_json() -> None:
    incident = Incident.model_validate(
        {
            "target": {"redis_url": "redis://r/0", "api_deployment": "treebeard-api"},
            "mode": "dry-run",
            "alerts": [
                {"source": "alertmanager", "name": "RedisDown", "fingerprint": "abc",
                 "labels": {"severity": "critical"}, "starts_at": "2026-11-26T03:00:00Z"}
            ],
            "requested_by": "alice",
        }
    )  # fmt: skip
    assert Incident.model_validate_json(incident.model_dump_json()) == incident
    assert incident.alerts[0].status == "firing"
