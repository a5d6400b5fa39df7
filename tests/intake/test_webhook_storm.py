"""An alert storm over real HTTP: Alertmanager-style repeated group deliveries for several
targets, sent concurrently. No worker polls while they arrive, so every incident stays open
for the whole storm (a dry run would otherwise finish within a second and the next delivery
would rightly open a new one). Then: exactly one workflow per target in visibility, each
distinct (fingerprint, status) signalled exactly once, and every fingerprint in the report
once a worker runs the incidents."""

from __future__ import annotations

import asyncio
import random

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from contracts.incident import IncidentReport
from tests.conftest import RedisFactory
from tests.harness import running_worker
from tests.intake.test_webhook_helpers import (
    alertmanager_payload,
    am_alert,
    bearer,
    namespace,
    route,
    serve,
    webhook_settings,
)
from worker.webhook import create_app

TARGETS = 8
REPEATS = 12
SENDERS = 20


def storm_for(ns: str) -> tuple[list[dict[str, object]], set[tuple[str, str]]]:
    """The distinct deliveries of one group as it evolves (grows, a member resolves), and the
    distinct (fingerprint, status) pairs they carry."""
    names = ["RedisDown", "RedisMemoryHigh", "RedisTooManyConnections", "RedisSlow"]
    alerts = [am_alert(n, f"{ns}-{n}", namespace=ns, pod="redis-0") for n in names]
    deliveries = [alertmanager_payload(alerts[: i + 1]) for i in range(len(alerts))]
    resolved = am_alert(names[0], f"{ns}-{names[0]}", "resolved", namespace=ns, pod="redis-0")
    deliveries.append(alertmanager_payload([resolved, *alerts[1:]]))
    pairs = {(str(a["fingerprint"]), str(a["status"])) for a in [*alerts, resolved]}
    return deliveries, pairs


async def test_storm_makes_one_incident_per_target_and_loses_no_alert(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    redis_url = redis_server().url
    namespaces = [namespace() for _ in range(TARGETS)]
    settings = webhook_settings(temporal_env, [route(ns, redis_url) for ns in namespaces])
    expected: dict[str, set[tuple[str, str]]] = {}
    queue: list[dict[str, object]] = []
    for ns in namespaces:
        deliveries, pairs = storm_for(ns)
        expected[f"redis-cache-failure/{ns}/redis"] = pairs
        queue += deliveries * REPEATS
    random.Random(6).shuffle(queue)

    app = create_app(settings)
    statuses: list[int] = []
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer()) as http:

            async def sender() -> None:
                while queue:
                    response = await http.post("/alerts/alertmanager", json=queue.pop())
                    statuses.append(response.status_code)

            await asyncio.gather(*(sender() for _ in range(SENDERS)))

    assert statuses == [200] * (TARGETS * 5 * REPEATS)
    client = temporal_env.client
    query = f"TaskQueue = '{settings.temporal.task_queue}'"
    for _ in range(50):  # visibility of the dev server trails the start by a moment
        runs = [w async for w in client.list_workflows(query)]
        if len(runs) >= TARGETS:
            break
        await asyncio.sleep(0.1)
    assert sorted(w.id for w in runs) == sorted(expected), "exactly one workflow per target"

    for workflow_id, pairs in expected.items():
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        signals = [e for e in history.events if e.event_type == signaled]
        assert len(signals) == len(pairs), "each distinct (fingerprint, status) sent once"

    async with running_worker(client, settings):
        reports = await asyncio.gather(
            *(client.get_workflow_handle(w, result_type=IncidentReport).result() for w in expected)
        )
    for workflow_id, report in zip(expected, reports, strict=True):
        assert {a.fingerprint for a in report.alerts} == {fp for fp, _ in expected[workflow_id]}
        assert report.workflow_id == workflow_id
