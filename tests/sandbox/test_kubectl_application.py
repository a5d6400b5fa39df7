"""The runbook's commands about the application's side, with a real kubectl 1.33: the API's
pods and their log, `kubectl exec` into them (kubectl's websocket protocol), the ConfigMap
Redis starts from, and the fallback's scale-out. Run as the runbook writes them, in bash,
with REDIS_HOST set in the operator's shell as the runbook assumes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import processes
from sandbox.cluster import SandboxCluster
from tests.sandbox_checks import ROLE

KUBECTL = processes.kubectl()
NS = "treebeard-production"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    root = tmp_path_factory.mktemp("kubectl-app")
    with SandboxCluster(root, role_file=ROLE, api_traffic=0.2) as running:
        yield running


def sh(
    cluster: SandboxCluster, line: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One runbook line in bash, kubectl being the real one."""
    env = {"KUBECONFIG": str(kubeconfig or cluster.kubeconfig), "HOME": str(cluster.root),
           "PATH": f"{Path(KUBECTL).parent}:/usr/bin:/bin", "REDIS_HOST": "redis"}  # fmt: skip
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True,
                          timeout=90, check=False)  # fmt: skip


def eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_the_api_runs_its_pods_and_grep_finds_redis(cluster: SandboxCluster) -> None:
    pods = sh(cluster, f"kubectl get pods -n {NS} -o name")
    api = [p for p in pods.stdout.split() if p.startswith("pod/treebeard-api-")]
    assert len(api) == 3, pods.stdout
    grep = sh(cluster, f"kubectl get pods -n {NS} | grep redis")
    assert grep.returncode == 0 and [line.split()[0] for line in grep.stdout.splitlines()] == [
        "redis-0"
    ]


def test_the_api_log_shows_its_requests_then_the_outage(cluster: SandboxCluster) -> None:
    line = f"kubectl logs -n {NS} deployment/treebeard-api --tail=100"
    eventually(lambda: "cache=" in sh(cluster, line).stdout, "API requests in the log")
    first = sh(cluster, line)
    assert first.returncode == 0 and "Found 3 pods, using pod/treebeard-api-" in first.stderr
    assert "Connection refused" not in first.stdout
    cluster.fault("down")
    try:
        grep = f"{line} | grep -i redis"
        eventually(lambda: "Connection refused" in sh(cluster, grep).stdout, "Redis errors")
        assert "Error 111 connecting to redis:6379" in sh(cluster, grep).stdout
    finally:
        cluster.fault("clear")
        cluster.wait_ready()
    tail = sh(cluster, f"kubectl logs -n {NS} deployment/treebeard-api --tail=2")
    assert len(tail.stdout.splitlines()) == 2


def test_exec_checks_redis_from_the_applications_side(cluster: SandboxCluster) -> None:
    """Tells "Redis is down" from "the API cannot reach Redis": the same PING, from the pod."""
    ping = f"kubectl exec -n {NS} deployment/treebeard-api -- redis-cli -h $REDIS_HOST ping"
    up = sh(cluster, ping)
    assert (up.returncode, up.stdout.strip()) == (0, "PONG"), up.stderr
    cluster.fault("down")
    try:
        eventually(lambda: sh(cluster, ping).returncode != 0, "the PING to fail")
        down = sh(cluster, ping)
        assert down.returncode == 1
        assert (
            "Could not connect to Redis at redis:6379: Connection refused"
            in down.stdout + down.stderr
        )
        assert "command terminated with exit code 1" in down.stderr
    finally:
        cluster.fault("clear")
        cluster.wait_ready()


def test_exec_runs_with_the_pods_env_and_returns_its_exit_code(cluster: SandboxCluster) -> None:
    env = sh(cluster, f"kubectl exec -n {NS} deployment/treebeard-api -c api -- env")
    assert "CACHE_ENABLED=true" in env.stdout and "HOSTNAME=treebeard-api-" in env.stdout
    failed = sh(cluster, f"kubectl exec -n {NS} redis-0 -- sh -c 'exit 3'")
    assert failed.returncode == 3 and "command terminated with exit code 3" in failed.stderr
    piped = sh(
        cluster, f"printf 'SET k v\\nGET k\\n' | kubectl exec -i -n {NS} redis-0 -- redis-cli"
    )
    assert piped.stdout.split() == ["OK", "v"], piped.stderr
    refused = sh(cluster, f"kubectl exec -n {NS} redis-0 -- redis-cli ping",
                 kubeconfig=cluster.runbook_kubeconfig)  # fmt: skip
    assert refused.returncode == 1
    assert 'cannot create resource "pods/exec"' in refused.stderr


def test_redis_runs_on_the_configmap(cluster: SandboxCluster) -> None:
    shown = sh(cluster, f"kubectl get configmap redis-config -n {NS} -o yaml")
    assert shown.returncode == 0 and "maxmemory-policy noeviction" in shown.stdout
    live = sh(cluster, f"kubectl exec -n {NS} redis-0 -- redis-cli config get maxmemory-policy")
    assert live.stdout.split() == ["maxmemory-policy", "noeviction"]
    described = sh(cluster, f"kubectl describe statefulset redis -n {NS}")
    assert "ConfigMap (a volume populated by a ConfigMap)" in described.stdout
    assert "redis-config" in described.stdout


def test_the_fallback_scales_the_api_out_and_back(cluster: SandboxCluster) -> None:
    def api_pods() -> list[str]:
        names = sh(cluster, f"kubectl get pods -n {NS} -l app=treebeard-api -o name").stdout
        return names.split()

    assert (
        sh(
            cluster, f"kubectl set env deployment/treebeard-api CACHE_ENABLED=false -n {NS}"
        ).returncode
        == 0
    )
    assert (
        sh(cluster, f"kubectl scale deployment/treebeard-api --replicas=8 -n {NS}").returncode == 0
    )
    status = sh(cluster, f"kubectl rollout status deployment/treebeard-api -n {NS} --timeout=60s")
    assert "successfully rolled out" in status.stdout, status.stderr
    assert len(api_pods()) == 8
    line = f"kubectl logs -n {NS} deployment/treebeard-api --tail=1"
    eventually(lambda: "cache=disabled" in sh(cluster, line).stdout, "the cache switched off")
    sh(cluster, f"kubectl set env deployment/treebeard-api CACHE_ENABLED=true -n {NS}")
    sh(cluster, f"kubectl scale deployment/treebeard-api --replicas=3 -n {NS}")
    sh(cluster, f"kubectl rollout status deployment/treebeard-api -n {NS} --timeout=60s")
    assert len(api_pods()) == 3


def test_describe_shows_the_events_a_restart_leaves(cluster: SandboxCluster) -> None:
    sh(cluster, f"kubectl rollout restart statefulset/redis -n {NS}")
    sh(cluster, f"kubectl rollout status statefulset/redis -n {NS} --timeout=60s")
    described = sh(cluster, f"kubectl describe pod redis-0 -n {NS}").stdout
    assert "Started container redis" in described.split("Events:")[1]
    events = sh(
        cluster, f"kubectl get events -n {NS} --field-selector involvedObject.name=redis -o name"
    )
    assert events.returncode == 0 and events.stdout.strip(), events.stderr


def test_a_lockdown_policy_cuts_the_api_off_from_a_healthy_redis(cluster: SandboxCluster) -> None:
    """The network plugin's part: a policy that admits nothing drops the API's connections,
    while Redis itself is up and answers from outside the pod network."""
    ping = f"kubectl exec -n {NS} deployment/treebeard-api -- redis-cli -h $REDIS_HOST ping"
    cluster.fault("cut-off")
    try:
        assert "redis-lockdown" in sh(cluster, f"kubectl get networkpolicies -n {NS}").stdout
        cut = sh(cluster, ping)
        assert cut.returncode == 1 and "Connection timed out" in cut.stdout + cut.stderr
        with cluster.redis() as conn:
            assert conn.ping()
        grep = f"kubectl logs -n {NS} deployment/treebeard-api --tail=5 | grep -i redis"
        eventually(lambda: "Connection timed out" in sh(cluster, grep).stdout, "timeouts logged")
    finally:
        cluster.fault("clear")
    assert "redis-lockdown" not in sh(cluster, f"kubectl get networkpolicies -n {NS}").stdout
    assert sh(cluster, ping).stdout.strip() == "PONG"
