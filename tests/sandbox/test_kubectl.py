"""The runbook's own kubectl commands against the sandbox, with a real kubectl 1.33 (put in the
virtualenv by scripts/ensure-kubectl.py): kubectl is strict about discovery, TLS and bearer
tokens, watches, strategic-merge patches, subresources and status codes, so it is the check,
independent of this project, that the emulator answers as a Kubernetes API server does.

The commands that are not served yet (exec, the API pods' logs, Table output) are the open
part of the sandbox-speaks-kubectl work."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import processes
from sandbox.cluster import SandboxCluster
from tests.sandbox_checks import ROLE

KUBECTL = processes.kubectl()
NS = "treebeard-production"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path_factory.mktemp("kubectl"), role_file=ROLE) as running:
        yield running


def kubectl(
    cluster: SandboxCluster, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": str(kubeconfig or cluster.kubeconfig), "HOME": str(cluster.root)}
    return subprocess.run(
        [str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def ok(cluster: SandboxCluster, *args: str, kubeconfig: Path | None = None) -> str:
    run = kubectl(cluster, *args, kubeconfig=kubeconfig)
    assert run.returncode == 0, f"kubectl {' '.join(args)}: {run.stderr}"
    assert "error" not in run.stderr.lower(), run.stderr
    return run.stdout


def test_it_is_a_real_kubectl_1_33_and_a_current_server() -> None:
    version = subprocess.run(
        [str(KUBECTL), "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    assert json.loads(version.stdout)["clientVersion"]["minor"] == "33"


def test_discovery_finds_every_type_by_name_and_short_name(cluster: SandboxCluster) -> None:
    server = json.loads(ok(cluster, "version", "-o", "json"))["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "33")
    resources = ok(cluster, "api-resources", "-o", "name")
    for name in ("pods", "statefulsets.apps", "deployments.apps", "persistentvolumeclaims"):
        assert name in resources.split(), resources
    listed = ok(cluster, "get", "po,sts,deploy,pvc,ep,svc", "-n", NS, "-o", "name")
    assert set(listed.split()) >= {
        "pod/redis-0",
        "statefulset.apps/redis",
        "deployment.apps/treebeard-api",
        "persistentvolumeclaim/data-redis-0",
        "endpoints/redis",
        "service/redis",
    }


def test_the_first_commands_of_the_runbook(cluster: SandboxCluster) -> None:
    assert "redis-0" in ok(cluster, "get", "pods", "-n", NS)
    assert "redis" in ok(cluster, "get", "endpoints", "redis", "-n", NS)
    assert "data-redis-0" in ok(cluster, "get", "pvc", "-n", NS)
    described = ok(cluster, "describe", "pod", "redis-0", "-n", NS)
    assert "Controlled By:  StatefulSet/redis" in described
    assert "ClaimName:   data-redis-0" in described
    assert "Events:" in ok(cluster, "describe", "statefulset", "redis", "-n", NS)
    missing = kubectl(cluster, "get", "pod", "redis-9", "-n", NS)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "redis-9" not found'


def test_rollout_restart_really_restarts_redis_and_wait_sees_it_ready(
    cluster: SandboxCluster,
) -> None:
    before = cluster.restarts()
    assert "restarted" in ok(cluster, "rollout", "restart", "statefulset/redis", "-n", NS)
    status = ok(cluster, "rollout", "status", "statefulset/redis", "-n", NS, "--timeout=60s")
    assert "rolling update complete" in status
    ready = ok(cluster, "wait", "--for=condition=ready", "pod/redis-0", "-n", NS, "--timeout=60s")
    assert "condition met" in ready
    assert cluster.restarts() == before + 1
    assert cluster.redis().ping()


def test_fallback_commands_change_only_what_they_name(cluster: SandboxCluster) -> None:
    def api() -> dict[str, object]:
        found: dict[str, object] = json.loads(
            ok(cluster, "get", "deployment", "treebeard-api", "-n", NS, "-o", "json")
        )
        return found

    before = api()
    ok(cluster, "set", "env", "deployment/treebeard-api", "CACHE_ENABLED=false", "-n", NS)
    ok(cluster, "scale", "deployment/treebeard-api", "--replicas=8", "-n", NS)
    after = api()
    status = ok(cluster, "rollout", "status", "deployment/treebeard-api", "-n", NS)
    assert "successfully rolled out" in status

    def containers(d: dict[str, object]) -> list[dict[str, object]]:
        return d["spec"]["template"]["spec"]["containers"]  # type: ignore[index, no-any-return]

    env = {e["name"]: e["value"] for e in containers(after)[0]["env"]}  # type: ignore[attr-defined]
    old_env = {e["name"]: e["value"] for e in containers(before)[0]["env"]}  # type: ignore[attr-defined]
    assert env == {**old_env, "CACHE_ENABLED": "false"}
    assert after["spec"]["replicas"] == 8  # type: ignore[index]
    kept = [{k: v for k, v in c.items() if k != "env"} for c in containers(after)]
    assert kept == [{k: v for k, v in c.items() if k != "env"} for c in containers(before)]


def test_a_force_delete_brings_a_new_pod(cluster: SandboxCluster) -> None:
    uid = ok(cluster, "get", "pod", "redis-0", "-n", NS, "-o", "jsonpath={.metadata.uid}")
    deleted = ok(cluster, "delete", "pod", "redis-0", "-n", NS, "--force", "--grace-period=0")
    assert 'pod "redis-0" force deleted' in deleted
    ok(cluster, "wait", "--for=create", "pod/redis-0", "-n", NS, "--timeout=60s")  # the controller
    ok(cluster, "wait", "--for=condition=ready", "pod/redis-0", "-n", NS, "--timeout=60s")
    new = ok(cluster, "get", "pod", "redis-0", "-n", NS, "-o", "jsonpath={.metadata.uid}")
    assert new != uid


def test_the_workers_kubeconfig_is_held_to_the_shipped_role(cluster: SandboxCluster) -> None:
    worker = cluster.runbook_kubeconfig
    assert "redis-0" in ok(cluster, "get", "pods", "-n", NS, kubeconfig=worker)
    refused = kubectl(cluster, "delete", "deployment", "treebeard-api", "-n", NS, kubeconfig=worker)
    assert refused.returncode == 1
    assert "Error from server (Forbidden)" in refused.stderr
    assert 'cannot delete resource "deployments"' in refused.stderr


def test_auth_can_i_answers_with_the_shipped_role(cluster: SandboxCluster) -> None:
    """kubectl posts the SelfSubjectAccessReview as protobuf (no JSON fallback)."""
    worker = cluster.runbook_kubeconfig
    can = kubectl(cluster, "auth", "can-i", "patch", "statefulsets/redis", "-n", NS,
                  kubeconfig=worker)  # fmt: skip
    cannot = kubectl(cluster, "auth", "can-i", "delete", "deployments", "-n", NS,
                     kubeconfig=worker)  # fmt: skip
    admin = kubectl(cluster, "auth", "can-i", "delete", "deployments", "-n", NS)
    assert (can.returncode, can.stdout.strip()) == (0, "yes"), can.stderr
    assert (cannot.returncode, cannot.stdout.strip()) == (1, "no"), cannot.stderr
    assert admin.stdout.strip() == "yes"


def test_logs_are_the_real_redis_servers(cluster: SandboxCluster) -> None:
    """`kubectl logs statefulset/redis --tail=100`: kubectl finds the pod through the
    StatefulSet, defaults to its `redis` container, and reads the redis-server's own log."""
    logs = kubectl(cluster, "logs", "-n", NS, "statefulset/redis", "--tail=100")
    assert logs.returncode == 0, logs.stderr
    assert "Ready to accept connections" in logs.stdout
    assert 'Defaulted container "redis" out of: redis, exporter' in logs.stderr
    last = ok(cluster, "logs", "-n", NS, "redis-0", "-c", "redis", "--tail=1")
    assert len(last.splitlines()) == 1
    assert ok(cluster, "logs", "-n", NS, "redis-0", "-c", "exporter") == ""


def test_the_network_policy_in_front_of_redis(cluster: SandboxCluster) -> None:
    assert "redis-from-api" in ok(cluster, "get", "networkpolicies", "-n", NS)
    described = ok(cluster, "describe", "netpol", "redis-from-api", "-n", NS)
    assert "PodSelector:     app=redis" in described
    assert "app=treebeard-api" in described and "6379/TCP" in described
