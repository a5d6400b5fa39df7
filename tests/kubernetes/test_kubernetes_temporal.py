"""The Kubernetes activities on a real Temporal worker (dev server, pydantic data converter),
called the way the workflow's step executor calls them: by step name, positional arguments,
result_type StepResult or the specific result type."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.kubernetes.client import KubernetesAccess
from activities.kubernetes.steps import KubernetesActivities
from activities.targets import ConfiguredTarget, TargetBook
from contracts.kubernetes import FallbackResult, ReadinessResult, RestartResult
from contracts.steps import StepResult
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster
from tests.sandbox_checks import ROLE


@workflow.defn(sandboxed=False)
class KubeStepsProbe:
    """Restart twice with one stamp (as a retry would), wait, then fall back twice."""

    @workflow.run
    async def run(self, target: RedisTarget) -> list[Any]:
        options: dict[str, Any] = {
            "start_to_close_timeout": timedelta(seconds=30),
            "retry_policy": RetryPolicy(maximum_attempts=2),
        }
        stamp = workflow.now().isoformat()
        first = await workflow.execute_activity(
            "restart", args=[target, stamp], result_type=RestartResult, **options
        )
        again = await workflow.execute_activity(
            "restart", args=[target, stamp], result_type=StepResult, **options
        )
        deadline = (workflow.now() + timedelta(seconds=20)).isoformat()
        ready = await workflow.execute_activity(
            "wait_ready",
            args=[target, deadline, 0.1],
            result_type=ReadinessResult,
            heartbeat_timeout=timedelta(seconds=5),
            **options,
        )
        fallback = await workflow.execute_activity(
            "enable_fallback", args=[target, 5], result_type=FallbackResult, **options
        )
        retried = await workflow.execute_activity(
            "enable_fallback", args=[target, 5], result_type=FallbackResult, **options
        )
        return [first, again, ready, fallback, retried]


async def test_steps_run_on_a_temporal_worker(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = f"kube-{uuid.uuid4().hex[:8]}"
    with (
        SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster,
        ThreadPoolExecutor(max_workers=4) as executor,
    ):
        target = RedisTarget(
            redis_url=cluster.redis_url,
            namespace=cluster.names.namespace,
            statefulset=cluster.names.statefulset,
            api_deployment=cluster.names.api_deployment,
        )
        steps = KubernetesActivities.from_access(
            KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig),
            TargetBook([ConfiguredTarget(name="sandbox", target=target)]),
        )
        async with Worker(
            temporal_env.client,
            task_queue=queue,
            workflows=[KubeStepsProbe],
            activities=steps.all(),
            activity_executor=executor,
        ):
            first, again, ready, fallback, retried = await temporal_env.client.execute_workflow(
                KubeStepsProbe.run, target, id=f"kube-steps-{uuid.uuid4()}", task_queue=queue
            )
        assert cluster.restarts() == 1
    assert first["restarted"] is True and again["changed"] is False
    assert "restarted" not in again  # a StepResult: the typed extras are not required
    assert ready["ready"] is True and ready["ping_ok"] is True
    assert (fallback["original_replicas"], retried["original_replicas"]) == (3, 3)
    assert (fallback["changed"], retried["changed"]) == (True, False)
