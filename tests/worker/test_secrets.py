"""Secrets never travel in workflow input or history: the worker holds them."""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import RedisFactory
from tests.harness import auto, full_evicting_redis, running_worker, settings_for, start
from tests.intake.test_webhook_helpers import (
    alertmanager_payload,
    am_alert,
    bearer,
    grafana_payload,
    hmac_hex,
    namespace,
    route,
    serve,
    webhook_settings,
)
from worker.webhook import create_app

SECRET = "s3cret-4d1f-redis-password"
HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


async def test_redis_password_is_in_no_history_and_no_log(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = full_evicting_redis(redis_server, requirepass=SECRET)
    settings = settings_for(server.url, redis_password=SECRET, approvals={"required_for": []})
    caplog.set_level(logging.DEBUG)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations  # it did reach Redis
    assert report.diagnosis.reachable
    history = readable((await handle.fetch_history()).to_json())
    assert server.url in history  # the target is in there, decoded
    assert SECRET not in history
    assert SECRET not in caplog.text
    assert SECRET not in report.model_dump_json()


WEBHOOK_SECRETS = {
    "webhook_token": "tok-9f2c-webhook-bearer",
    "webhook_basic_password": "basic-77aa-password",
    "grafana_secret": "graf-31be-hmac",
    "pagerduty_secrets": "pd-c0de-hmac",
    "slack_signing_secret": "slack-5e1f-signing",
}
# What a credential or a secret-bearing URL looks like, for the recorded corpus.
LOOKS_SECRET = re.compile(
    r"Bearer [A-Za-z0-9._~+/-]{8}|Basic [A-Za-z0-9+/=]{8}|requirepass|hooks\.slack\.com/services"
)


async def test_webhook_credentials_are_in_no_log_and_no_history(
    temporal_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """Right and wrong credentials, signed and forged deliveries: none of the secrets (nor the
    headers carrying them) reaches a log line or the incident the webhook opened."""
    ns = namespace()
    settings = webhook_settings(temporal_env, [route(ns)], **WEBHOOK_SECRETS)
    body = alertmanager_payload([am_alert("RedisDown", "s1", namespace=ns)])
    raw = json.dumps(grafana_payload([])).encode()
    caplog.set_level(logging.DEBUG)
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for headers in (
                bearer("tok-9f2c-webhook-bearer-but-wrong"),
                bearer(WEBHOOK_SECRETS["webhook_token"]),
                {"Authorization": "Basic " + base64.b64encode(b"x:basic-77aa-password").decode()},
            ):
                await http.post("/alerts/alertmanager", json=body, headers=headers)
            signature = hmac_hex(WEBHOOK_SECRETS["grafana_secret"], raw)
            grafana = {
                "Content-Type": "application/json",
                "X-Grafana-Alerting-Signature": signature,
            }
            await http.post("/alerts/grafana", content=raw, headers=grafana)
            slack = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": "1",
                "X-Slack-Signature": "v0=00",
            }
            await http.post("/slack/actions", content=b"payload=%7B%7D", headers=slack)
    handle = temporal_env.client.get_workflow_handle(f"redis-cache-failure/{ns}/redis")
    history = readable((await handle.fetch_history()).to_json())
    await handle.terminate("test done")

    assert "RedisDown" in history  # the delivery with the right token did open it
    for name, secret in WEBHOOK_SECRETS.items():
        assert secret not in caplog.text, f"{name} in a log line"
        assert secret not in history, f"{name} in the incident's history"
    assert not LOOKS_SECRET.search(caplog.text)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_recorded_histories_hold_no_credentials(path: Path) -> None:
    """The replay corpus is committed: scan it, payloads decoded, for anything credential-like."""
    found = LOOKS_SECRET.search(readable(path.read_text()))
    assert found is None, f"{path.name}: {found.group(0) if found else ''}"


def readable(history_json: str) -> str:
    """A history as JSON with every payload's data decoded beside it: payloads are base64 in
    the JSON, so a plain substring search would never see what they carry."""
    decoded = [
        base64.b64decode(data).decode("utf-8", "replace")
        for data in re.findall(r'"data":\s*"([A-Za-z0-9+/=]+)"', history_json)
    ]
    assert decoded, "no payloads found: the history format changed"
    return "\n".join([history_json, *decoded])
