"""The RedisCacheFailure workflow in dry-run mode, on the real dev server, per scenario."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from contracts.alerts import Alert
from contracts.diagnosis import Scenario
from contracts.incident import IncidentReport, IncidentStatus, Mode
from contracts.steps import StepName
from sandbox import faults
from sandbox.processes import binary
from tests.conftest import RedisFactory
from tests.harness import dry_run, redis_in_state, running_worker, settings_for, start

TEMPORAL = binary("temporal", [Path(sys.executable).parent])

EXPECTED_PATHS = {
    Scenario.REDIS_DOWN: [
        "diagnose", "ping", "restart", "wait_ready", "force_delete_pod", "wait_ready",
        "enable_fallback", "warm", "re_enable", "scale", "watch_hit_rate", "diagnose",
    ],
    Scenario.OUT_OF_MEMORY: [
        "diagnose", "set_eviction_policy", "memory_purge", "flush", "raise_memory_limit",
        "wait_ready", "warm", "watch_hit_rate", "diagnose",
    ],
    Scenario.TOO_MANY_CONNECTIONS: ["diagnose", "raise_maxclients", "diagnose"],
    Scenario.SLOW_COMMANDS: ["diagnose", "diagnose"],  # the offenders are for a person
    Scenario.HEALTHY: ["diagnose"],
}  # fmt: skip


@pytest.mark.parametrize("scenario", list(EXPECTED_PATHS))
async def test_dry_run_diagnoses_and_plans(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, scenario: Scenario
) -> None:
    url, _held = redis_in_state(redis_server, scenario)
    settings = settings_for(url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, dry_run(url))
        report = await handle.result()
        status = await handle.query("status", result_type=IncidentStatus)

    assert report.scenario is scenario
    assert report.outcome == "planned" and report.mode is Mode.DRY_RUN
    assert [s.name.value for s in report.steps] == EXPECTED_PATHS[scenario]
    assert report.steps[0].status == "succeeded"
    assert all(s.status == "planned" for s in report.steps[1:])
    assert report.diagnosis.redis_url == url
    assert status.phase == "done" and status.scenario is scenario
    assert [s.name for s in status.plan] == [s.name for s in report.steps]


async def test_plan_marks_approvals_from_policy(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    url, _ = redis_in_state(redis_server, Scenario.OUT_OF_MEMORY)
    settings = settings_for(
        url, approvals={"required_for": ["flush"], "approvals_needed": {"flush": 2}}
    )
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, dry_run(url))).result()

    by_name = {s.name: s for s in report.steps}
    assert by_name[StepName.FLUSH].requires_approval
    assert by_name[StepName.FLUSH].approvals_needed == 2
    assert not by_name[StepName.SET_EVICTION_POLICY].requires_approval
    assert by_name[StepName.SET_EVICTION_POLICY].destructive


async def test_dry_run_changes_nothing_in_redis(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    client = server.client()
    faults.fill_memory(client)
    before = (client.dbsize(), client.config_get("maxmemory-policy"))
    client.config_resetstat()
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        await (await start(temporal_env.client, settings, dry_run(server.url))).result()

    stats = client.info("commandstats")
    assert (client.dbsize(), client.config_get("maxmemory-policy")) == before
    issued = {name.removeprefix("cmdstat_") for name in stats} - {"config|resetstat"}
    read_only = {
        "info",
        "ping",
        "slowlog|get",
        "dbsize",
        "scan",
        "memory|usage",
        "ttl",
        "config|get",
    }
    assert issued == read_only


def _temporal_start(env: WorkflowEnvironment, queue: str, workflow_id: str, payload: str) -> None:
    address = env.client.service_client.config.target_host
    subprocess.run(
        [TEMPORAL, "workflow", "start", "--address", address, "--type", "RedisCacheFailure",
         "--task-queue", queue, "--workflow-id", workflow_id, "--input", payload],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


async def test_plain_temporal_cli_start_completes_with_a_report(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server()
    settings = settings_for(server.url)
    payload = json.dumps(
        {
            "target": {
                "redis_url": server.url,
                "namespace": "treebeard-production",
                "statefulset": "redis",
                "api_deployment": "treebeard-api",
            },
            "mode": "dry-run",
        }
    )
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    async with running_worker(temporal_env.client, settings):
        await asyncio.to_thread(
            _temporal_start, temporal_env, settings.temporal.task_queue, workflow_id, payload
        )
        handle = temporal_env.client.get_workflow_handle(workflow_id)
        result = await handle.result()

    assert result["scenario"] == "healthy" and result["outcome"] == "planned"
    assert result["diagnosis"]["reachable"] is True


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"target": {"redis_url": "http://x:1/0"}, "mode": "dry-run"}', "redis_url"),
        ('{"target": {"redis_url": "redis://x:1/0"}, "mode": "dry-run", "colour": 1}', "colour"),
        ('{"target": {"redis_url": "redis://x:1/0"}, "mode": "sometimes"}', "mode"),
        ('{"mode": "dry-run"}', "target"),
    ],
)
async def test_bad_input_from_plain_cli_fails_the_workflow_naming_the_field(
    temporal_env: WorkflowEnvironment, payload: str, field: str
) -> None:
    settings = settings_for()
    workflow_id = f"bad-{uuid.uuid4().hex[:8]}"
    async with running_worker(temporal_env.client, settings):
        await asyncio.to_thread(
            _temporal_start, temporal_env, settings.temporal.task_queue, workflow_id, payload
        )
        handle = temporal_env.client.get_workflow_handle(workflow_id)
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=20)

    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.FAILED
    assert field in str(failure.value.cause)


async def test_alerts_are_recorded_once_per_fingerprint(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server()
    settings = settings_for(server.url)
    first = Alert(source="alertmanager", name="RedisDown", fingerprint="f1")
    incident = dry_run(server.url).model_copy(update={"alerts": [first]})
    async with running_worker(temporal_env.client, settings):
        handle = await temporal_env.client.start_workflow(
            "RedisCacheFailure",
            incident,
            id=f"alerts-{uuid.uuid4().hex[:8]}",
            task_queue=settings.temporal.task_queue,
            start_signal="alert",
            start_signal_args=[first],
            result_type=IncidentReport,
        )
        report = await handle.result()

    assert [a.fingerprint for a in report.alerts] == ["f1"]
    assert [e.kind for e in report.timeline].count("alert") == 0
