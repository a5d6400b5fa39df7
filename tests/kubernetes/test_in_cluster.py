"""In-cluster configuration, as a pod gets it: a real `runbook worker` process with no
kubeconfig, only KUBERNETES_SERVICE_HOST/_PORT and a service-account token and CA in files (at
configured paths), restarts a killed Redis through the sandbox's API over HTTPS, checked
against that CA and held to the shipped Role by that token. A token the API server does not
know gets 401, and the restart waits for a person instead of running uncorroborated."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from contracts.incident import IncidentReport
from sandbox.cluster import SandboxCluster
from sandbox.processes import Daemon
from tests.harness import auto, start, wait_for_pending
from tests.sandbox_checks import NS, ROLE
from worker.settings.runbook import Settings, TemporalSettings

RUNBOOK = str(Path(sys.executable).parent / "runbook")


def pod_files(tmp_path: Path, cluster: SandboxCluster, token: str) -> tuple[Path, Path]:
    """What the kubelet mounts: the service account's token and the cluster's CA."""
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(token)
    (mounted / "ca.crt").write_bytes(cluster.server.certs.ca_pem)
    return mounted / "token", mounted / "ca.crt"


async def in_cluster_worker(
    env: WorkflowEnvironment, cluster: SandboxCluster, tmp_path: Path, token: str
) -> tuple[Daemon, Settings]:
    """A `runbook worker` process configured as in a pod, and settings to start incidents."""
    token_file, ca_file = pod_files(tmp_path, cluster, token)
    queue = f"in-cluster-{os.getpid()}-{len(token)}"
    config = tmp_path / "runbook.yaml"
    config.write_text(yaml.safe_dump({
        "temporal": {"address": env.client.service_client.config.target_host, "task_queue": queue},
        "outage": {"ready_timeout": "20s", "poll": "0.5s"},
        "thresholds": {"vantage_recheck": "1s"},  # the second look, when Kubernetes is unread
        "kubernetes": {"token_file": str(token_file), "ca_file": str(ca_file)},
        "targets": [{"name": "sandbox", "redis_url": cluster.redis_url, "namespace": NS,
                     "statefulset": "redis", "api_deployment": "treebeard-api"}],
    }))  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "RUNBOOK_CONFIG")}
    environ.update(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(cluster.port),
                   HOME=str(tmp_path))  # no ~/.kube/config to fall back on  # fmt: skip
    worker = Daemon("worker", [RUNBOOK, "--config", str(config), "worker"],
                    tmp_path / "worker.log", environ)  # fmt: skip
    return worker, Settings(temporal=TemporalSettings(task_queue=queue))


async def incident_in_cluster(
    env: WorkflowEnvironment, cluster: SandboxCluster, tmp_path: Path, token: str
) -> IncidentReport:
    worker, settings = await in_cluster_worker(env, cluster, tmp_path, token)
    try:
        await asyncio.to_thread(cluster.fault, "down")
        handle = await start(env.client, settings, auto(cluster.redis_url))
        return await asyncio.wait_for(handle.result(), 60)
    finally:
        worker.stop()


async def test_the_worker_in_a_pod_restarts_redis_with_its_service_account(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        report = await incident_in_cluster(temporal_env, cluster, tmp_path, cluster.runbook_token)
        patches = [r for r in cluster.api.audit
                   if r.verb == "patch" and r.resource == "statefulsets"]  # fmt: skip
    done = {s.name.value: s.status for s in report.steps}
    assert done["restart"] == "succeeded", report.escalations
    assert report.outcome == "resolved", report.escalations
    ours = [r for r in patches if r.user == cluster.runbook_user]  # the fault is the admin's
    assert ours and all(r.code < 400 for r in ours)


async def test_a_token_the_api_server_does_not_know_restarts_nothing(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Redis down as only the runbook sees it (Kubernetes answers 401): the restart waits for
    a person instead of running uncorroborated."""
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        worker, settings = await in_cluster_worker(temporal_env, cluster, tmp_path, "unknown")
        try:
            await asyncio.to_thread(cluster.fault, "down")
            handle = await start(temporal_env.client, settings, auto(cluster.redis_url))
            status = await wait_for_pending(handle, "restart", within=60)
            await handle.terminate("test over")
        finally:
            worker.stop()
        restarts = cluster.restarts()
        refused = [r for r in cluster.api.audit if r.code == 401]
    assert restarts == 0 and refused
    restart = next(s for s in status.plan if s.name.value == "restart")
    assert restart.requires_approval and "only as the runbook sees it" in restart.title
