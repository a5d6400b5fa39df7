"""Warming after a flush: each target's own warmers, the HTTP warmer told which cache and
proven by its header, and a warm step that fails when every warmer failed (the incident goes
on: a cold cache still serves)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.steps import StepName
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    full_evicting_redis,
    running_worker,
    settings_for,
    start,
    target_route,
)
from tests.http_receiver import loopback_server
from worker.rbac import roles_for
from worker.settings.runbook import ConfigError, Settings

TOKEN_ENV = "TEST_WARM_TOKEN"


class WarmEndpoint:
    """The application's warm endpoint: records each call's query, body and header."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[dict[str, Any]] = []


@contextmanager
def warm_endpoint(status: int = 204) -> Iterator[WarmEndpoint]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            endpoint.calls.append({
                "path": self.path,
                "body": json.loads(self.rfile.read(length)),
                "authorization": self.headers.get("Authorization"),
            })  # fmt: skip
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    with loopback_server(Handler) as server:
        host, port = server.server_address[:2]
        endpoint = WarmEndpoint(f"http://{host!s}:{port}/warm")
        yield endpoint


async def test_each_target_is_warmed_by_its_own_warmer_told_the_target_with_its_header(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "Bearer warm-secret")
    server = full_evicting_redis(redis_server)
    other = redis_server()
    with warm_endpoint() as own, warm_endpoint() as shared:
        mine = {"name": "api", "kind": "http", "url": own.url, "auth_env": TOKEN_ENV}
        routes = [
            target_route(server.url, warmers=[mine]),
            target_route(other.url, statefulset="redis-b"),  # the top-level warmers
        ]
        settings = settings_for(
            targets=routes,
            approvals={"required_for": []},
            warmers=[{"name": "shared", "kind": "http", "url": shared.url}],
        )
        async with running_worker(temporal_env.client, settings):
            report = await (await start(temporal_env.client, settings, auto(server.url))).result()

    warm = next(s for s in report.steps if s.name is StepName.WARM)
    assert warm.status == "succeeded", warm.detail
    assert shared.calls == []  # the other target's warmer never hears of this one
    assert [c["body"]["critical_only"] for c in own.calls] == [True, False]
    paths = [c["path"] for c in own.calls]
    assert paths == ["/warm?critical_only=true", "/warm?critical_only=false"]
    body = own.calls[0]["body"]
    assert body["target"] == f"tests/{server.url}" and body["redis_url"] == server.url
    assert (body["namespace"], body["statefulset"]) == ("treebeard-production", "redis")
    assert {c["authorization"] for c in own.calls} == {"Bearer warm-secret"}
    assert "password" not in json.dumps(own.calls).lower()


async def test_warm_fails_when_every_warmer_failed_and_the_incident_goes_on(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    with warm_endpoint(status=503) as refusing:
        broken = [
            {"name": "down", "kind": "http", "url": refusing.url},
            {"name": "missing", "kind": "callable", "target": "sandbox.cache_traffic:no_such_fn"},
        ]
        settings = settings_for(server.url, approvals={"required_for": []}, warmers=broken)
        async with running_worker(temporal_env.client, settings):
            report = await (await start(temporal_env.client, settings, auto(server.url))).result()

    steps = {s.name: s for s in report.steps}
    warm = steps[StepName.WARM]
    assert warm.status == "failed"
    assert warm.detail is not None and "every warmer failed" in warm.detail
    assert "down/critical" in warm.detail and "missing/all" in warm.detail
    assert "HTTP 503" in warm.detail
    assert len(refusing.calls) == 2  # each warmer had its go: the step is not retried
    assert steps[StepName.WATCH_HIT_RATE].status != "planned"  # the incident went on
    assert "every warmer failed" in report.review


def test_a_warmer_secret_missing_stops_the_worker_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    warmer = {"name": "api", "kind": "http", "url": "http://127.0.0.1:9/", "auth_env": TOKEN_ENV}
    settings = settings_for("redis://127.0.0.1:6379/0", warmers=[warmer])
    with pytest.raises(ConfigError, match=f"auth_env {TOKEN_ENV} is not set"):
        settings.armed_warmers()


@pytest.mark.parametrize(
    ("warmer", "error"),
    [
        ({"name": "w", "kind": "http"}, "an http warmer needs url"),
        ({"name": "w", "kind": "job"}, "a job warmer needs job"),
        ({"name": "w", "kind": "job", "job": {"spec": {"template": {"spec": {}}}}},
         "needs at least one container"),
        ({"name": "w", "kind": "callable", "target": "m:f", "auth_env": "X"},
         "auth_env is for http warmers only"),
        ({"name": "Not A Name", "kind": "http", "url": "http://x/"}, "name"),
    ],
)  # fmt: skip
def test_a_bad_warmer_is_refused_with_its_field(warmer: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        settings_for("redis://127.0.0.1:6379/0", warmers=[warmer])


JOB = {"spec": {"template": {"spec": {"containers": [{"name": "warm", "image": "app:1"}]}}}}


def test_a_job_warmer_gives_the_role_jobs_create_and_get_and_nothing_else_does() -> None:
    def job_rules(settings: Settings) -> list[Any]:
        rules = roles_for(settings)[0]["rules"]
        return [r for r in rules if r["apiGroups"] == ["batch"]]

    plain = settings_for("redis://127.0.0.1:6379/0")
    assert job_rules(plain) == []
    route = target_route("redis://127.0.0.1:6379/0",
                         warmers=[{"name": "warm", "kind": "job", "job": JOB}])  # fmt: skip
    with_job = settings_for(targets=[route])
    assert job_rules(with_job) == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}
    ]
