"""Maintenance mode at 30 minutes, on the sandbox with the time-skipping server: the 30-minute
escalation offers it behind approval while the plan waits on another approval, the approved
step sets the API's env var, and recovery puts the env back as it was."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes import client
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.decisions import Decision
from contracts.incident import IncidentStatus
from contracts.steps import StepName
from sandbox.cluster import SandboxCluster
from tests.harness import auto, running_worker, settings_for, start, target_route, wait_for_pending
from tests.sandbox_checks import NS, ROLE, until

MAINTENANCE = {"env": {"MAINTENANCE_MODE": "true"}}


def api_env(cluster: SandboxCluster) -> dict[str, str | None]:
    with cluster.api_client() as api:
        deploy = client.AppsV1Api(api).read_namespaced_deployment("treebeard-api", NS)
    assert deploy.spec is not None and deploy.spec.template.spec is not None
    return {e.name: e.value for e in deploy.spec.template.spec.containers[0].env or []}


async def first_pending(handle: WorkflowHandle[Any, Any], within: float = 60.0) -> str:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status: IncidentStatus = await handle.query("status", result_type=IncidentStatus)
        if status.pending_approvals:
            return status.pending_approvals[0].step.value
        assert asyncio.get_running_loop().time() < deadline, f"nothing pending: {status.phase}"
        await asyncio.sleep(0.2)


def approve(step: str) -> Decision:
    return Decision.model_validate({"step": step, "approver": "bob", "decision": "approve"})


async def test_the_30_minute_escalation_offers_maintenance_and_recovery_ends_it(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = time_skipping_env
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        await asyncio.to_thread(cluster.fault, "oom")
        route = target_route(cluster.redis_url, workload={"maintenance": MAINTENANCE})
        settings = settings_for(
            targets=[route],
            kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
            approvals={"timeout": "45m"},
        )
        before = api_env(cluster)
        async with running_worker(env.client, settings):
            handle = await start(env.client, settings, auto(cluster.redis_url))
            waiting = await first_pending(handle)  # the plan's own gated step
            assert waiting != "maintenance_mode"
            await env.sleep(timedelta(minutes=31))  # past the 30-minute escalation
            status = await wait_for_pending(handle, "maintenance_mode")
            offered = next(s for s in status.plan if s.name is StepName.MAINTENANCE_MODE)
            assert offered.offered and offered.requires_approval
            assert api_env(cluster).get("MAINTENANCE_MODE") is None  # nothing before approval
            await handle.execute_update("decide", approve("maintenance_mode"))
            await until(lambda: api_env(cluster).get("MAINTENANCE_MODE") == "true",
                        "maintenance mode on the API")  # fmt: skip
            await handle.execute_update("decide", approve(waiting))
            report = await handle.result()
        after = api_env(cluster)

    steps = {s.name: s for s in report.steps}
    assert report.outcome == "resolved", report.escalations
    assert steps[StepName.MAINTENANCE_MODE].status == "succeeded"
    assert steps[StepName.END_MAINTENANCE].status == "succeeded", steps[StepName.END_MAINTENANCE]
    assert after == before  # MAINTENANCE_MODE gone again, every other env var as it was
    assert any("maintenance mode offered" in e.message for e in report.timeline)
