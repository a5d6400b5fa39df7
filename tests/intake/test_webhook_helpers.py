"""Shared by the webhook tests: real uvicorn on a free loopback port, settings with targets of
their own (unique namespaces, so incidents of different tests never meet on the shared dev
server), and payloads in each source's real wire format."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from sandbox.processes import free_port
from tests.harness import settings_for
from worker.settings.runbook import Settings

TOKEN = "s3cret-token"
ZERO_TIME = "0001-01-01T00:00:00Z"


def test_helpers_build_real_payloads() -> None:
    body = alertmanager_payload([am_alert("RedisDown", "fp1", namespace="a")])
    assert body["version"] == "4" and body["alerts"][0]["endsAt"] == ZERO_TIME


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn in a thread; yield its base URL; stop it on exit."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def namespace() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def route(ns: str, redis_url: str = "redis://127.0.0.1:1/0", **match: str) -> dict[str, Any]:
    return {
        "name": f"{ns}/redis",
        "match": {"namespace": ns, **match},
        "redis_url": redis_url,
        "namespace": ns,
        "statefulset": "redis",
    }


def webhook_settings(
    env: WorkflowEnvironment, targets: list[dict[str, Any]], **overrides: Any
) -> Settings:
    settings = settings_for(
        targets=targets,
        webhook={"mode": "dry-run", **overrides.pop("webhook", {})},
        **{"webhook_token": TOKEN, **overrides},
    )
    settings.temporal.address = address(env)
    return settings


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def am_alert(
    name: str,
    fingerprint: str,
    status: str = "firing",
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", **labels},
        "annotations": annotations or {"summary": f"{name} on {labels.get('namespace')}"},
        "startsAt": "2026-11-26T10:00:00.123456789Z",
        "endsAt": ZERO_TIME if status == "firing" else "2026-11-26T10:05:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=redis_up+%3D%3D+0",
        "fingerprint": fingerprint,
    }


def alertmanager_payload(
    alerts: list[dict[str, Any]], truncated: int = 0, **extra: Any
) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    return {
        "receiver": "redis-runbook",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="RedisDown"}',
        "truncatedAlerts": truncated,
        **extra,
    }


def grafana_payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    for alert in alerts:
        alert.update(
            values={"B": 0.0, "C": 1},
            valueString="[ var='B' labels={} value=0 ], [ var='C' labels={} value=1 ]",
            dashboardURL="http://grafana:3000/d/redis",
            panelURL="http://grafana:3000/d/redis?viewPanel=2",
            silenceURL="http://grafana:3000/alerting/silence/new",
            ruleUID="bdx1",
            orgId=1,
            imageURL="",
        )
    body = alertmanager_payload(alerts)
    body.update(
        version="1",
        orgId=1,
        title=f"[FIRING:{len(alerts)}] RedisDown",
        state="alerting",
        message="**Firing**\n\nValue: B=0, C=1",
    )
    return body


def pagerduty_event(
    event_type: str, incident_id: str, title: str, service: str = "Treebeard Redis"
) -> dict[str, Any]:
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-11-26T10:00:00.000Z",
            "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": "Tenex Engineer"},
            "client": None,
            "data": {
                "id": incident_id,
                "type": "incident",
                "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                "number": 2,
                "status": "resolved" if event_type.endswith("resolved") else "triggered",
                "incident_key": f"key-{incident_id}",
                "created_at": "2026-11-26T10:00:00Z",
                "title": title,
                "service": {
                    "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
                    "id": "PF9KMXH",
                    "self": "https://api.pagerduty.com/services/PF9KMXH",
                    "summary": service,
                    "type": "service_reference",
                },
                "assignees": [],
                "escalation_policy": {"id": "PJ", "summary": "Default", "type": "ref"},
                "teams": [],
                "priority": {"id": "PSO75BM", "summary": "P1", "type": "priority_reference"},
                "urgency": "high",
                "conference_bridge": None,
                "resolve_reason": None,
            },
        }
    }


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
