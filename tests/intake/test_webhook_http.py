"""The webhook over real HTTP (uvicorn on a loopback port) against the real Temporal dev server:
each source's payload opens or signals the right incident, forged ones start nothing, bad
input is a 4xx, and Temporal away is a 503."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from contracts.alerts import AlertStatus
from contracts.incident import IncidentReport
from sandbox.processes import free_port
from tests.conftest import RedisFactory
from tests.harness import running_worker
from tests.intake.test_webhook_helpers import (
    TOKEN,
    alertmanager_payload,
    am_alert,
    bearer,
    grafana_payload,
    hmac_hex,
    namespace,
    pagerduty_event,
    route,
    serve,
    webhook_settings,
)
from worker.intake.sources import TRUNCATED_ANNOTATION
from worker.settings.runbook import ConfigError, Settings
from worker.webhook import build_state, create_app


def wid(ns: str, statefulset: str = "redis") -> str:
    return f"redis-cache-failure/{ns}/{statefulset}"


async def assert_not_started(client: Client, workflow_id: str) -> None:
    with pytest.raises(RPCError) as err:
        await client.get_workflow_handle(workflow_id).describe()
    assert err.value.status is RPCStatusCode.NOT_FOUND


async def run_to_report(
    env: WorkflowEnvironment, settings: Settings, workflow_id: str
) -> IncidentReport:
    """Deliveries arrive while no worker polls (so the incident stays open); then run it."""
    async with running_worker(env.client, settings):
        handle = env.client.get_workflow_handle(workflow_id, result_type=IncidentReport)
        report: IncidentReport = await handle.result()
        return report


async def test_alertmanager_group_opens_one_incident_with_every_alert(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    ns, other = namespace(), namespace()
    settings = webhook_settings(temporal_env, [route(ns, redis_server().url)])
    group = [
        am_alert("RedisDown", "fp-down", namespace=ns, pod="redis-0"),
        am_alert("RedisMemoryHigh", "fp-mem", namespace=ns, pod="redis-0"),
        am_alert("RedisSlow", "fp-slow", "resolved", namespace=ns, pod="redis-0"),
        am_alert("RedisDown", "fp-elsewhere", namespace=other),
    ]
    body = alertmanager_payload(group, truncated=3, notification_reason="new", routeLabels={})
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer()) as http:
            first = await http.post("/alerts/alertmanager", json=body)
            again = await http.post("/alerts/alertmanager", json=body)
            resolved = await http.post(
                "/alerts/alertmanager",
                json=alertmanager_payload(
                    [am_alert("RedisDown", "fp-down", "resolved", namespace=ns)]
                ),
            )
            metrics = (await http.get("/metrics")).text

    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["outcome"] == "recorded" and answer["truncated_alerts"] == 3
    [incident] = answer["incidents"]
    assert incident["workflow_id"] == wid(ns) and incident["started"]
    assert incident["alerts"] == ["fp-down", "fp-mem", "fp-slow"] and incident["signalled"] == 3
    assert [u["fingerprint"] for u in answer["unrouted"]] == ["fp-elsewhere"]
    assert again.json()["outcome"] == "duplicate", again.text
    assert again.json()["incidents"][0]["duplicates"] == 3
    assert (
        resolved.json()["outcome"] == "recorded" and not resolved.json()["incidents"][0]["started"]
    )
    assert (
        'runbook_webhook_deliveries_total{outcome="duplicate",source="alertmanager"} 1.0' in metrics
    )
    assert 'runbook_webhook_truncated_alerts_total{source="alertmanager"} 6.0' in metrics
    assert 'runbook_webhook_alerts_total{action="unrouted",source="alertmanager"} 2.0' in metrics

    report = await run_to_report(temporal_env, settings, wid(ns))
    alerts = {a.fingerprint: a for a in report.alerts}
    assert set(alerts) == {"fp-down", "fp-mem", "fp-slow"}
    assert alerts["fp-down"].status is AlertStatus.RESOLVED
    assert alerts["fp-slow"].status is AlertStatus.RESOLVED
    assert alerts["fp-mem"].annotations[TRUNCATED_ANNOTATION] == "3"
    assert alerts["fp-mem"].labels["pod"] == "redis-0" and alerts["fp-mem"].source == "alertmanager"
    assert report.target.namespace == ns
    await assert_not_started(temporal_env.client, wid(other))


async def test_first_matching_target_wins_and_missing_labels_are_answered_200(
    temporal_env: WorkflowEnvironment,
) -> None:
    ns = namespace()
    first = route(ns, alertname="Redis.*")
    second = {**route(ns), "name": "catch-all", "statefulset": "redis-b"}
    settings = webhook_settings(temporal_env, [first, second])
    no_labels = {"status": "firing", "labels": {}, "annotations": {}}
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer()) as http:
            both = await http.post(
                "/alerts/alertmanager",
                json=alertmanager_payload(
                    [
                        am_alert("RedisDown", "r1", namespace=ns),
                        am_alert("NodeDown", "n1", namespace=ns),
                    ]
                ),
            )
            bare = await http.post("/alerts/alertmanager", json={"alerts": [no_labels]})

    assert both.status_code == 200, both.text
    by_wid = {i["workflow_id"]: i["alerts"] for i in both.json()["incidents"]}
    assert by_wid == {wid(ns): ["r1"], wid(ns, "redis-b"): ["n1"]}
    assert bare.status_code == 200 and bare.json()["outcome"] == "unrouted"
    assert "no target" in bare.json()["unrouted"][0]["reason"]
    assert bare.json()["unrouted"][0]["name"] == "unnamed"


async def test_grafana_signed_delivery_accepted_forged_and_stale_refused(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    ns, forged_ns = namespace(), namespace()
    settings = webhook_settings(
        temporal_env,
        [route(ns, redis_server().url), route(forged_ns)],
        webhook_token=None,
        grafana_secret="grafana-hmac",
        webhook={"grafana_timestamp_header": "X-Grafana-Alerting-Signature-Timestamp"},
    )
    good = json.dumps(grafana_payload([am_alert("RedisDown", "g1", namespace=ns)])).encode()
    forged = json.dumps(
        grafana_payload([am_alert("RedisDown", "g2", namespace=forged_ns)])
    ).encode()

    def signed(body: bytes, secret: str = "grafana-hmac", age: int = 0) -> dict[str, str]:
        stamp = str(int(time.time()) - age)
        return {
            "Content-Type": "application/json",
            "X-Grafana-Alerting-Signature": hmac_hex(secret, stamp.encode() + b":" + body),
            "X-Grafana-Alerting-Signature-Timestamp": stamp,
        }

    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            ok = await http.post("/alerts/grafana", content=good, headers=signed(good))
            wrong = await http.post("/alerts/grafana", content=forged, headers=signed(forged, "x"))
            stale = await http.post(
                "/alerts/grafana", content=forged, headers=signed(forged, age=3600)
            )
            swapped = await http.post("/alerts/grafana", content=forged, headers=signed(good))
            unsigned = await http.post("/alerts/grafana", content=forged, headers=bearer())

    assert ok.status_code == 200, ok.text
    assert ok.json()["incidents"][0]["started"]
    assert wrong.status_code == 401 and "wrong Grafana signature" in wrong.json()["reason"]
    assert stale.status_code == 401 and "stale" in stale.json()["reason"]
    assert swapped.status_code == 401
    assert unsigned.status_code == 401  # no token configured: bearer is not usable
    await assert_not_started(temporal_env.client, wid(forged_ns))

    report = await run_to_report(temporal_env, settings, wid(ns))
    [alert] = report.alerts
    assert alert.source == "grafana" and alert.fingerprint == "g1"
    assert alert.annotations["grafana_dashboard_url"] == "http://grafana:3000/d/redis"


async def test_pagerduty_signed_events_with_rotated_secrets(
    temporal_env: WorkflowEnvironment,
) -> None:
    ns = namespace()
    pd_route = {**route(ns), "match": {"service": "Treebeard Redis", "alertname": "(?i).*redis.*"}}
    settings = webhook_settings(
        temporal_env, [pd_route], webhook_token=None, pagerduty_secrets="old-secret, new-secret"
    )

    def post_signed(event: dict[str, object], *secrets: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event).encode()
        signature = ",".join(f"v1={hmac_hex(s, body)}" for s in secrets)
        return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}

    triggered = pagerduty_event("incident.triggered", "PD1", "Redis cache unavailable")
    resolved = pagerduty_event("incident.resolved", "PD1", "Redis cache unavailable")
    acked = pagerduty_event("incident.acknowledged", "PD1", "Redis cache unavailable")
    other = pagerduty_event("incident.triggered", "PD2", "Disk full", service="Storage")
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:

            async def send(event: dict[str, object], *secrets: str) -> httpx.Response:
                body, headers = post_signed(event, *secrets)
                return await http.post("/alerts/pagerduty", content=body, headers=headers)

            rotating = await send(triggered, "unknown-secret", "new-secret")
            old = await send(resolved, "old-secret")
            ack = await send(acked, "new-secret")
            unrouted = await send(other, "new-secret")
            forged = await send(triggered, "guessed")
            unsigned = await http.post("/alerts/pagerduty", json=triggered)

    assert rotating.status_code == 200, rotating.text
    assert rotating.json()["incidents"][0]["started"]
    assert old.status_code == 200 and old.json()["outcome"] == "recorded"
    assert ack.status_code == 200 and ack.json()["outcome"] == "ignored"
    assert unrouted.status_code == 200 and unrouted.json()["outcome"] == "unrouted"
    assert forged.status_code == 401 and unsigned.status_code == 401

    status = await temporal_env.client.get_workflow_handle(wid(ns)).describe()
    assert status.id == wid(ns)
    history = await temporal_env.client.get_workflow_handle(wid(ns)).fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 2
    await temporal_env.client.get_workflow_handle(wid(ns)).terminate("test done")


async def test_bearer_and_basic_auth_for_every_source(temporal_env: WorkflowEnvironment) -> None:
    ns = namespace()
    settings = webhook_settings(
        temporal_env,
        [route(ns)],
        webhook_basic_password="basic-pw",
        webhook={"basic_username": "alertmanager"},
    )
    body = alertmanager_payload([am_alert("RedisDown", "b1", namespace=ns)])
    good_basic = "Basic " + base64.b64encode(b"alertmanager:basic-pw").decode()
    bad_basic = "Basic " + base64.b64encode(b"alertmanager:nope").decode()
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            refused = [
                await http.post("/alerts/alertmanager", json=body, headers=headers)
                for headers in (
                    {},
                    bearer("wrong"),
                    {"Authorization": bad_basic},
                    {"Authorization": "Basic !!notbase64"},
                    {"Authorization": TOKEN},
                )
            ]
            await assert_not_started(temporal_env.client, wid(ns))
            basic = await http.post(
                "/alerts/alertmanager", json=body, headers={"Authorization": good_basic}
            )
            token = await http.post("/alerts/generic", json=[], headers=bearer())
            grafana = await http.post("/alerts/grafana", json=grafana_payload([]), headers=bearer())

    assert [r.status_code for r in refused] == [401] * 5
    assert all(r.json()["error"] == "unauthorized" for r in refused)
    assert refused[0].headers["www-authenticate"].startswith("Bearer")
    assert basic.status_code == 200 and basic.json()["incidents"][0]["started"]
    assert token.status_code == 200 and token.json()["outcome"] == "ignored"
    assert grafana.status_code == 200
    await temporal_env.client.get_workflow_handle(wid(ns)).terminate("test done")


async def test_generic_alert_list_and_bad_input(temporal_env: WorkflowEnvironment) -> None:
    ns = namespace()
    settings = webhook_settings(temporal_env, [route(ns)], webhook={"max_body_bytes": 4096})
    alert = {
        "source": "cron-check",
        "name": "RedisDown",
        "labels": {"namespace": ns},
        "fingerprint": "c1",
    }
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer()) as http:
            bad = {
                "malformed": await http.post(
                    "/alerts/generic", content=b"[{", headers={"Content-Type": "application/json"}
                ),
                "schema": await http.post("/alerts/generic", json=[{**alert, "typo": 1}]),
                "alertmanager_schema": await http.post("/alerts/alertmanager", json={"x": 1}),
                "big": await http.post("/alerts/generic", json=[alert] * 100),
                "text": await http.post(
                    "/alerts/generic",
                    content=json.dumps([alert]),
                    headers={"Content-Type": "text/plain"},
                ),
                "no_type": await http.post("/alerts/generic", content=json.dumps([alert])),
            }
            await assert_not_started(temporal_env.client, wid(ns))
            good = await http.post("/alerts/generic", json=[alert])
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            schema = (await http.get("/openapi.json")).json()

    assert {k: r.status_code for k, r in bad.items()} == {
        "malformed": 400,
        "schema": 422,
        "alertmanager_schema": 422,
        "big": 413,
        "text": 415,
        "no_type": 415,
    }
    assert all("reason" in r.json() for r in bad.values())
    assert good.status_code == 200 and good.json()["incidents"][0]["workflow_id"] == wid(ns)
    assert health.json() == {"status": "ok"} and ready.status_code == 200
    assert set(schema["paths"]) >= {
        f"/alerts/{s}" for s in ("alertmanager", "grafana", "pagerduty", "generic")
    }
    await temporal_env.client.get_workflow_handle(wid(ns)).terminate("test done")


async def test_temporal_down_answers_503_and_records_nothing(
    temporal_env: WorkflowEnvironment,
) -> None:
    ns = namespace()
    settings = webhook_settings(temporal_env, [route(ns)])
    settings.temporal.address = f"127.0.0.1:{free_port()}"  # nothing listens there
    body = alertmanager_payload([am_alert("RedisDown", "d1", namespace=ns)])
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer()) as http:
            down = [await http.post("/alerts/alertmanager", json=body) for _ in range(2)]
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
            metrics = (await http.get("/metrics")).text

    assert [r.status_code for r in down] == [503, 503]
    assert down[0].headers["retry-after"] == "5"
    assert "cannot reach Temporal" in down[0].json()["reason"]
    assert ready.status_code == 503 and health.status_code == 200
    assert (
        'runbook_webhook_deliveries_total{outcome="unavailable",source="alertmanager"} 2.0'
        in metrics
    )


def test_no_credentials_refuses_to_start_unless_insecure() -> None:
    settings = Settings(webhook_token=None)
    with pytest.raises(ConfigError, match="--insecure-no-auth"):
        build_state(settings)
    assert build_state(settings, insecure_no_auth=True).auth.open
    with_token = Settings(webhook_token="t")
    assert not build_state(with_token, insecure_no_auth=True).auth.open


async def test_resolved_alert_never_opens_an_incident(temporal_env: WorkflowEnvironment) -> None:
    ns = namespace()
    settings = webhook_settings(temporal_env, [route(ns)])
    body = alertmanager_payload([am_alert("RedisDown", "r1", "resolved", namespace=ns)])
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer()) as http:
            answer = await http.post("/alerts/alertmanager", json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ignored"
    assert answer.json()["incidents"][0]["ignored"] == 1
    await assert_not_started(temporal_env.client, wid(ns))
