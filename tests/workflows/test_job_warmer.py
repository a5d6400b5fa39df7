"""The runbook's warm script as a Kubernetes Job, on the sandbox: the fallback path's warm step
makes one Job from the target's template (the application's image running
`scripts/warm_cache.py --critical-only`), waits for it, and reports it; a Job that fails makes
the warm step fail, once, and the incident still gives the API its cache back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from temporalio.testing import WorkflowEnvironment

from contracts.incident import IncidentReport
from contracts.steps import StepName
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, start, target_route
from tests.sandbox_checks import NS, api_state, fallback_settings, incident, until
from worker.rbac import roles_for
from worker.settings.runbook import Settings

WARM = ["python", "scripts/warm_cache.py", "--critical-only"]
FAILING = ["python", "-c", "import sys; print('catalog database unreachable'); sys.exit(3)"]


def job_warmer(command: list[str]) -> dict[str, Any]:
    """The application's image, labelled as the API so the NetworkPolicy lets it reach Redis."""
    container = {"name": "warm-cache", "image": "treebeard/api:1.4.2", "command": command,
                 "env": [{"name": "REDIS_URL", "value": "redis://redis:6379/0"}]}  # fmt: skip
    template = {"metadata": {"labels": {"app": "treebeard-api"}},
                "spec": {"containers": [container]}}  # fmt: skip
    return {"name": "warm-cache", "kind": "job", "timeout_s": 60, "poll_s": 0.2,
            "job": {"spec": {"template": template}}}  # fmt: skip


def settings_with(cluster: SandboxCluster, command: list[str]) -> Settings:
    base = fallback_settings(cluster)
    route = target_route(cluster.redis_url, warmers=[job_warmer(command)])
    return base.model_copy(update={"targets": Settings(targets=[route]).targets})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    """The sandbox, its runbook token held to the Role generated for a Job-warmer target."""
    route = target_route("redis://127.0.0.1:1/0", warmers=[job_warmer(WARM)])
    role = tmp_path / "role.yaml"
    role.write_text(yaml.safe_dump(roles_for(Settings(targets=[route]))[0]))
    with SandboxCluster(tmp_path / "sandbox", role_file=role) as running:
        yield running


def warm_jobs(cluster: SandboxCluster) -> tuple[list[Any], list[Any]]:
    with cluster.api_client() as api:
        jobs = client.BatchV1Api(api).list_namespaced_job(
            NS, label_selector="app.kubernetes.io/managed-by=redis-runbook"
        )
        pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector="job-name")
    return jobs.items, pods.items


async def through_fallback(
    env: WorkflowEnvironment, cluster: SandboxCluster, settings: Settings
) -> IncidentReport:
    await asyncio.to_thread(cluster.fault, "crashloop")
    async with running_worker(env.client, settings):
        handle = await start(env.client, settings, incident(cluster))
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await asyncio.to_thread(cluster.fault, "clear")
        return await handle.result()


async def test_the_warm_step_runs_the_warm_script_once_as_a_job(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    report = await through_fallback(temporal_env, cluster, settings_with(cluster, WARM))

    warm = next(s for s in report.steps if s.name is StepName.WARM)
    assert warm.status == "succeeded", warm.detail
    assert warm.result is not None
    outcome = str(warm.result.after["warm-cache/critical"])
    assert outcome.startswith("job warm-cache-") and "completed" in outcome
    jobs, pods = warm_jobs(cluster)
    assert len(jobs) == 1 and len(pods) == 1  # once per warm step
    assert jobs[0].status.succeeded == 1
    assert [c.type for c in jobs[0].status.conditions if c.status == "True"][-1] == "Complete"
    with cluster.redis() as conn:
        assert conn.get("catalog:item:0") == "item 0 from the database"
        assert conn.exists("catalog:item:49") and not conn.exists("catalog:item:50")
    assert api_state(cluster) == (3, "true")
    assert report.outcome == "resolved", report.escalations


async def test_a_failing_job_fails_the_warm_step_once_and_the_api_gets_its_cache_back(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    report = await through_fallback(temporal_env, cluster, settings_with(cluster, FAILING))

    steps = {s.name: s for s in report.steps}
    warm = steps[StepName.WARM]
    assert warm.status == "failed"
    assert warm.detail is not None and "every warmer failed" in warm.detail
    assert "BackoffLimitExceeded" in warm.detail
    jobs, pods = warm_jobs(cluster)
    assert len(jobs) == 1 and len(pods) == 1  # one run: not retried, not restarted
    assert steps[StepName.RE_ENABLE].status == "succeeded"
    assert api_state(cluster) == (3, "true")
