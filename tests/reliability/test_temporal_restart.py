"""The Temporal server SIGKILLed mid-incident and started again on the same port with the same
SQLite file: the incident carries on from its history and nothing repeats. A dev server of
the case's own (the session's is shared by every other test), and a `runbook worker`
process that rides out the outage by reconnecting.

Counted where it lands: the sandbox API server's audit log (the runbook's committed writes
and what each wrote), the objects' generations, the warm endpoint's calls, and the history
(each step's activity scheduled once, finished by its first attempt).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts.incident import IncidentReport, IncidentStatus
from contracts.steps import StepName
from sandbox.cluster import SandboxCluster
from tests.harness import settings_for, start, wait_for_pending
from tests.reliability.conftest import WorkersFor
from tests.reliability.counting import (
    FALLBACK_AND_BACK,
    activity_runs,
    committed,
    deployment_changes,
    effects,
)
from tests.reliability.incidents import (
    TO_FALLBACK,
    api_state,
    generations,
    incident,
    steps,
    until,
    until_status,
    worker_config,
)
from tests.reliability.processes import DevServer
from tests.reliability.warm_endpoint import warm_endpoint


@pytest.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    server = DevServer(tmp_path / "temporal")
    try:
        yield server
    finally:
        server.stop()


def announced(status: IncidentStatus) -> bool:
    return any(e.message.startswith("approval_request to ") for e in status.timeline)


@pytest.mark.timeout(240)
async def test_server_killed_during_an_approval_wait_keeps_the_approval_gate(
    dev_server: DevServer, cluster: SandboxCluster, workers_for: WorkersFor
) -> None:
    """Exactly once: the rollout restart (one committed StatefulSet patch) and the approved
    force delete (one committed pod DELETE); no Deployment change (Redis came back before the
    fallback deadline)."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    task_queue = f"server-crash-{uuid.uuid4().hex[:8]}"
    outage = {"ready_timeout": "2s", "fallback_after": "10m", "poll": "0.5s"}
    config = worker_config(
        cluster, task_queue, outage=outage, approvals={"required_for": ["force_delete_pod"]}
    )
    client = await dev_server.start()
    workers = workers_for(dev_server.address, config)
    workers.spawn()
    handle = await start(client, settings_for(task_queue=task_queue), incident(cluster))
    await wait_for_pending(handle, "force_delete_pod", within=60)
    await until_status(handle, announced, "the approval request delivered")  # none in flight

    dev_server.kill()  # as its host dies; then the same binary, port and file
    client = await dev_server.start()
    handle = client.get_workflow_handle(handle.id, result_type=IncidentReport)
    await wait_for_pending(handle, "force_delete_pod", within=60)  # still waiting, still gated
    assert committed(cluster, "delete", "pods") == []
    await handle.signal("approve", {"step": "force_delete_pod", "approver": "bob"})
    report = await handle.result()

    assert report.outcome == "resolved", (report.escalations, workers.logs()[-3000:])
    assert ("force_delete_pod", "succeeded") in steps(report)
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert len(committed(cluster, "delete", "pods")) == 1
    assert deployment_changes(cluster) == []
    assert generations(cluster) == (2, 1)
    assert cluster.redis().ping()
    runs = await activity_runs(handle)
    assert (runs.scheduled["restart"], runs.scheduled["force_delete_pod"]) == (1, 1)
    assert runs.attempts["force_delete_pod"] == [1]


@pytest.mark.timeout(240)
async def test_server_killed_while_waiting_for_redis_in_fallback_restores_once(
    dev_server: DevServer, cluster: SandboxCluster, workers_for: WorkersFor
) -> None:
    """The server dies while the workflow polls Redis on durable timers in fallback, and
    Redis comes back while it is down. Exactly once: the restart, the three Deployment patches
    (fallback, cache back on, replicas back), and the warm (endpoint called critical then
    all)."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    task_queue = f"server-crash-{uuid.uuid4().hex[:8]}"
    with warm_endpoint() as endpoint:
        gate = {"name": "gate", "kind": "http", "url": endpoint.url}
        config = worker_config(cluster, task_queue, warmers=[gate], **TO_FALLBACK)
        config["outage"] = {**TO_FALLBACK["outage"], "poll": "2s"}
        client = await dev_server.start()
        workers = workers_for(dev_server.address, config)
        workers.spawn()
        handle = await start(client, settings_for(task_queue=task_queue), incident(cluster))
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await until_status(
            handle,
            lambda s: (
                s.current_step is StepName.WARM
                and any("in fallback, waiting" in e.message for e in s.timeline)
            ),
            "waiting for Redis in fallback",
        )

        dev_server.kill()
        await asyncio.to_thread(cluster.fault, "clear")
        client = await dev_server.start()
        handle = client.get_workflow_handle(handle.id, result_type=IncidentReport)
        report = await handle.result()

    assert report.outcome == "resolved", (report.escalations, workers.logs()[-3000:])
    assert endpoint.calls == ["critical", "all"]
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert committed(cluster, "delete", "pods") == []
    assert deployment_changes(cluster) == FALLBACK_AND_BACK
    assert generations(cluster) == (2, 4)
    assert api_state(cluster) == (3, "true")
    runs = await activity_runs(handle)
    once = ["restart", "enable_fallback", "warm", "re_enable", "scale", "watch_hit_rate"]
    assert {name: runs.scheduled[name] for name in once} == dict.fromkeys(once, 1)
    assert all(runs.attempts[name] == [1] for name in once), runs.attempts
