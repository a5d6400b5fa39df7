"""The genuine alerting path on this machine: the sandbox cluster's real redis-server is
killed; Debian's redis_exporter sees it; Prometheus evaluates the shipped rules
(deploy/prometheus/rules/redis.rules.yml) and fires RedisDown; Alertmanager, with the shipped
receiver (deploy/alertmanager/alertmanager.yml), delivers it with its bearer token to our
webhook; the webhook opens the incident; the worker restarts Redis through the sandbox's
Kubernetes API; the alert resolves in Prometheus and Alertmanager, and Alertmanager delivers
the resolution.

The chain is sandbox/alerting.py (shared with `make demo`): the deploy/ files as shipped,
changed only in ports and paths, the intervals (1s) and every rule's `for:` (0s); every process
on a free 127.0.0.1 port, stopped by its PID and process group.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.incident import IncidentReport
from sandbox.alerting import INSTALL_HINT, AlertingChain, missing_binaries
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, settings_for
from tests.intake.test_webhook_helpers import TOKEN, address, serve
from worker.webhook import create_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROLE = DEPLOY / "k8s" / "rbac" / "role.yaml"
NS = "treebeard-production"
WORKFLOW_ID = f"redis-cache-failure/{NS}/redis"

pytestmark = pytest.mark.skipif(
    bool(missing_binaries()),
    reason=f"needs {', '.join(missing_binaries())}: {INSTALL_HINT}",
)


@contextmanager
def monitoring(root: Path, redis_port: int, webhook_port: int) -> Iterator[AlertingChain]:
    """The chain with the test's token; on a failure, the last lines each daemon logged."""
    token = root / "token"
    token.write_text(TOKEN + "\n")
    with AlertingChain(root / "chain", redis_port, webhook_port, token) as chain:
        try:
            yield chain
        except BaseException:
            print(chain.tails())
            raise


async def until(check: Any, what: str, within: float) -> Any:
    """Poll the async `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {within}s")
        await asyncio.sleep(0.25)


async def get_json(http: httpx.AsyncClient, url: str) -> Any:
    try:
        answer = await http.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match[2])
    return total


async def resolution_in_history(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether an `alert` signal carrying a resolved alert is in the workflow's history."""
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attrs = event.workflow_execution_signaled_event_attributes
        payloads = b"".join(p.data for p in attrs.input.payloads)
        if attrs.signal_name == "alert" and b'"resolved"' in payloads:
            return True
    return False


async def test_killed_redis_is_alerted_restarted_and_resolved_through_the_real_chain(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = temporal_env.client
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        settings = settings_for(
            kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
            outage={"ready_timeout": "20s", "poll": "0.5s"},
            webhook={"mode": "auto", "auth": {"alertmanager": ["bearer"]}},
            webhook_token=TOKEN,
            targets=[
                {
                    "name": f"{NS}/redis",
                    "match": {"namespace": NS, "alertname": "Redis.*"},
                    "redis_url": cluster.redis_url,
                    "namespace": NS,
                    "statefulset": "redis",
                    "api_deployment": "treebeard-api",
                }
            ],
        )
        settings.temporal.address = address(temporal_env)
        with (
            serve(create_app(settings)) as webhook_url,
            monitoring(tmp_path, cluster.redis_port, int(webhook_url.rsplit(":", 1)[1])) as chain,
        ):
            prom, am = chain.prometheus_url, chain.alertmanager_url
            async with httpx.AsyncClient() as http, running_worker(client, settings):

                async def redis_up() -> list[str]:
                    body = await get_json(http, f"{prom}/api/v1/query?query=redis_up")
                    result = body["data"]["result"] if body else []
                    return [r["value"][1] for r in result]

                async def firing() -> list[dict[str, Any]]:
                    body = await get_json(http, f"{prom}/api/v1/alerts")
                    alerts = body["data"]["alerts"] if body else []
                    return [a for a in alerts if a["labels"]["alertname"] == "RedisDown"]

                async def am_active() -> Any:
                    return await get_json(http, f"{am}/api/v2/alerts?active=true")

                async def latest_run() -> WorkflowExecutionDescription | None:
                    try:
                        return await client.get_workflow_handle(WORKFLOW_ID).describe()
                    except RPCError:
                        return None

                async def incident_opened() -> bool:
                    latest = await latest_run()
                    return latest is not None and latest.run_id not in earlier

                async def runs() -> list[str]:
                    query = f"WorkflowId = '{WORKFLOW_ID}'"
                    return [w.run_id async for w in client.list_workflows(query)]

                # The dev server is shared by the session's tests: none may hold the id open.
                earlier = await runs()
                before = await latest_run()
                assert before is None or before.status != WorkflowExecutionStatus.RUNNING

                # 1. The chain sees a healthy Redis first, and nothing fires.
                assert await until(redis_up, "a scrape of redis_up", 20) == ["1"]
                assert await firing() == []

                # 2. Kill it: RedisDown fires and Alertmanager's delivery opens the incident.
                await asyncio.to_thread(cluster.fault, "down")
                await until(incident_opened, "the incident opened by Alertmanager", 25)
                handle = client.get_workflow_handle(WORKFLOW_ID, result_type=IncidentReport)
                report = await asyncio.wait_for(handle.result(), 45)

                # 3. The workflow restored Redis.
                done = {s.name.value: s.status for s in report.steps}
                assert report.scenario.value == "redis_down"
                assert done["restart"] == "succeeded"
                assert report.outcome == "resolved", report.escalations
                assert cluster.restarts() == 1
                assert await asyncio.to_thread(cluster.redis().ping)
                (opening,) = [a for a in report.alerts if a.name == "RedisDown"]
                assert opening.source == "alertmanager"
                assert opening.labels["namespace"] == NS
                assert report.requested_by == "alertmanager"

                # 4. The alert resolves in Prometheus, then in Alertmanager.
                await until(lambda: _none(firing), "RedisDown to resolve in Prometheus", 20)
                await until(
                    lambda: _equals(am_active, []), "Alertmanager to have no active alert", 20
                )

                # 5. Alertmanager delivered the resolution, and it reached the incident.
                async def resolution_answered() -> tuple[float, float] | None:
                    text = (await http.get(f"{webhook_url}/metrics")).text
                    counts = {
                        action: metric(
                            text,
                            "runbook_webhook_alerts_total",
                            source="alertmanager",
                            action=action,
                        )
                        for action in ("started", "signalled", "ignored")
                    }
                    assert counts["started"] == 1, counts
                    later = counts["signalled"] + counts["ignored"]
                    return (counts["signalled"], counts["ignored"]) if later else None

                signalled, ignored = await until(
                    resolution_answered, "the resolved delivery at the webhook", 20
                )
                am_metrics = (await http.get(f"{am}/metrics")).text
                sent = metric(am_metrics, "alertmanager_notifications_total", integration="webhook")
                failed = metric(
                    am_metrics, "alertmanager_notifications_failed_total", integration="webhook"
                )
                assert sent >= 2, "the firing and the resolved notification"
                assert failed == 0
                # Which answer it got is a race between the workflow's last steps and
                # Prometheus seeing Redis back (one scrape, one evaluation, one group_interval);
                # both are correct, and each is checked where it leaves its trace.
                if signalled:
                    # Delivered while the incident was open: the signal is in its history.
                    assert await resolution_in_history(handle)
                else:
                    # Delivered after the incident ended: answered 200 "ignored".
                    assert ignored >= 1
                # Either way the resolution opened no new incident.
                await until(
                    lambda: _equals(lambda: _count(runs), len(earlier) + 1),
                    "exactly one run of the incident",
                    5,
                )
                print(f"resolved delivery: signalled={signalled} ignored={ignored}")


async def _none(check: Any) -> bool:
    return not await check()


async def _equals(check: Any, expected: Any) -> bool:
    return bool(await check() == expected)


async def _count(check: Any) -> int:
    return len(await check())
