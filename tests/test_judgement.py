"""Judgement on real parts: the runbook never acts on a healthy system on its own view alone.
The sandbox cluster (real redis-server pods, readiness by real PING), real Temporal."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from temporalio.testing import WorkflowEnvironment

from activities.kubernetes_models import RESTARTED_AT
from activities.models import Incident, Mode, RedisTarget, Scenario
from sandbox.cluster import SandboxCluster
from sandbox.processes import free_port
from tests.harness import running_worker, settings_for, start, target_route
from tests.sandbox_checks import NS


def statefulset(cluster: SandboxCluster) -> tuple[int, dict[str, Any]]:
    """(metadata.generation, the pod template's annotations) of the Redis StatefulSet."""
    with cluster.api_client() as api:
        sts = client.AppsV1Api(api).read_namespaced_stateful_set("redis", NS).to_dict()
    template = sts["spec"]["template"]["metadata"] or {}
    return int(sts["metadata"]["generation"]), dict(template.get("annotations") or {})


async def test_only_the_runbook_cut_off_restarts_nothing(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """The worker's URL has the wrong port while the pod is Ready with ready endpoints."""
    wrong = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(
        targets=[target_route(wrong)],
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        thresholds={"vantage_recheck": "0.5s"},
        approvals={"timeout": "1s"},
    )
    before = statefulset(cluster)
    target = RedisTarget(redis_url=wrong, namespace=NS, statefulset="redis",
                         api_deployment="treebeard-api")  # fmt: skip
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, Incident(target=target, mode=Mode.AUTO))
        report = await handle.result()

    assert report.scenario is Scenario.UNREACHABLE_FROM_RUNBOOK
    assert "Kubernetes calls it Ready" in report.reasons[0]
    assert "wrong port" in report.reasons[0] and "NetworkPolicy" in report.reasons[0]
    restart = next(s for s in report.steps if s.name.value == "restart")
    assert restart.requires_approval and restart.status == "skipped"
    assert statefulset(cluster) == before  # generation and restart stamp unchanged
    assert RESTARTED_AT not in before[1]
    assert cluster.restarts() == 0
    assert report.outcome == "escalated"
    assert "unreachable_from_runbook" in report.review
    assert any(e.kind == "vantage" for e in report.timeline)  # it looked twice
