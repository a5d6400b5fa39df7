"""The sandbox cluster's controller: real redis-server pods that restart the way Kubernetes
restarts them, status that moves the way the StatefulSet controller moves it, and faults
injected through the API. The official client over HTTP, real redis-server processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client

from sandbox.cluster import SandboxCluster
from sandbox.manifests import FAULT_ANNOTATION, RESTARTS_ANNOTATION
from sandbox.processes import wait_for_port
from tests.sandbox_checks import answers

NS = "treebeard-production"


def wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path / "sandbox") as running:
        yield running


# The official client's models make every field Optional; the tests read them through Any
# (an absent field fails the assertion anyway) and pass plain dicts as bodies.
@pytest.fixture
def core(cluster: SandboxCluster) -> Any:
    return client.CoreV1Api(cluster.api_client())


@pytest.fixture
def apps(cluster: SandboxCluster) -> Any:
    return client.AppsV1Api(cluster.api_client())


def redis_state(core: Any) -> Any:
    pod = core.read_namespaced_pod("redis-0", NS)
    return next(s for s in pod.status.container_statuses if s.name == "redis")


def pod_uid(core: Any) -> str | None:
    """The pod's uid, None between a deletion and its recreation."""
    try:
        return str(core.read_namespaced_pod("redis-0", NS).metadata.uid)
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise


def event_reasons(core: Any, name: str) -> list[str]:
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
    return [e.reason for e in events]


def test_default_objects_and_a_real_redis(cluster: SandboxCluster, core: Any, apps: Any) -> None:
    sts = apps.read_namespaced_stateful_set("redis", NS)
    assert [c.name for c in sts.spec.template.spec.containers] == ["redis", "exporter"]
    assert sts.spec.template.spec.containers[0].resources.limits["memory"] == "32Mi"
    deploy = apps.read_namespaced_deployment("treebeard-api", NS)
    api, sidecar = deploy.spec.template.spec.containers
    assert (api.name, sidecar.name, deploy.spec.replicas) == ("api", "envoy", 3)
    assert {e.name: e.value for e in api.env}["CACHE_ENABLED"] == "true"
    assert len(api.env) > 1
    wait_for(
        lambda: apps.read_namespaced_deployment("treebeard-api", NS).status.ready_replicas == 3
    )
    assert core.read_namespaced_persistent_volume_claim("data-redis-0", NS).status.phase == "Bound"
    assert core.read_namespaced_service("redis", NS).spec.selector == {"app": "redis"}
    endpoints = core.read_namespaced_endpoints("redis", NS)
    assert [a.target_ref.name for a in endpoints.subsets[0].addresses] == ["redis-0"]
    assert endpoints.subsets[0].ports[0].port == cluster.redis_port
    pod = core.read_namespaced_pod("redis-0", NS)
    assert pod.status.phase == "Running"
    assert pod.metadata.annotations[RESTARTS_ANNOTATION] == "0"
    assert all(s.ready for s in pod.status.container_statuses)
    with cluster.redis() as conn:
        assert conn.config_get("maxmemory")["maxmemory"] == str(32 * 2**20 * 3 // 4)
        assert conn.config_get("appendonly")["appendonly"] == "yes"
    assert "Started" in event_reasons(core, "redis-0")


def test_rollout_restart_recreates_the_pod_once_and_keeps_the_data(
    cluster: SandboxCluster, core: Any, apps: Any
) -> None:
    with cluster.redis() as conn:
        conn.mset({f"k{i}": i for i in range(50)})
    before_pod = core.read_namespaced_pod("redis-0", NS)
    before = apps.read_namespaced_stateful_set("redis", NS)
    pid = cluster.controller.runtime(NS, "redis-0").process.pid
    apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t1"}}
                }
            }
        },
    )
    cluster.wait_ready()
    after = apps.read_namespaced_stateful_set("redis", NS)
    assert after.metadata.generation == before.metadata.generation + 1
    assert after.status.observed_generation == after.metadata.generation
    assert after.status.update_revision != before.status.update_revision
    assert after.status.current_revision == after.status.update_revision
    pod = core.read_namespaced_pod("redis-0", NS)
    assert pod.metadata.uid != before_pod.metadata.uid
    assert pod.metadata.labels["controller-revision-hash"] == after.status.update_revision
    assert cluster.restarts() == 1
    assert pod.metadata.annotations[RESTARTS_ANNOTATION] == "1"
    assert cluster.controller.runtime(NS, "redis-0").process.pid != pid
    with cluster.redis() as conn:
        assert conn.dbsize() == 50  # AOF persistence in the pod's own data dir
    assert {"Killing", "Started"} <= set(event_reasons(core, "redis-0"))
    assert "SuccessfulCreate" in event_reasons(core, "redis")


def test_memory_limit_change_restarts_redis_on_its_config_file(
    cluster: SandboxCluster, apps: Any
) -> None:
    """The pod rolls, and Redis comes back with the ConfigMap's maxmemory: a bigger limit
    alone raises nothing, which is why the runbook's step carries maxmemory in the args."""
    apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "redis", "resources": {"limits": {"memory": "64Mi"}}}
                        ]
                    }
                }
            }
        },
    )
    cluster.wait_ready()
    assert cluster.restarts() == 1
    with cluster.redis() as conn:
        assert conn.config_get("maxmemory")["maxmemory"] == str(24 * 2**20)


def test_redis_reads_the_configmap_when_it_starts_and_args_win(
    cluster: SandboxCluster, apps: Any, core: Any
) -> None:
    conf = core.read_namespaced_config_map("redis-config", NS).data["redis.conf"]
    assert "maxmemory-policy noeviction" in conf and "appendonly yes" in conf
    with cluster.redis() as conn:
        assert conn.config_get("maxclients")["maxclients"] == "64"
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    edited = conf.replace("maxmemory-policy noeviction", "maxmemory-policy allkeys-lru")
    core.patch_namespaced_config_map("redis-config", NS, {"data": {"redis.conf": edited}})
    with cluster.redis() as conn:  # read at start only, as redis-server does
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    sts = apps.read_namespaced_stateful_set("redis", NS).to_dict()
    args = [*sts["spec"]["template"]["spec"]["containers"][0]["args"], "--maxclients", "80"]
    apps.patch_namespaced_stateful_set(
        "redis", NS, {"spec": {"template": {"spec": {"containers": [
            {"name": "redis", "args": args}]}}}},
    )  # fmt: skip
    cluster.wait_ready()
    with cluster.redis() as conn:
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert conn.config_get("maxclients")["maxclients"] == "80"


def test_deleted_pods_come_back(cluster: SandboxCluster, core: Any) -> None:
    uid = pod_uid(core)
    core.delete_namespaced_pod("redis-0", NS)  # graceful: the kubelet stops it, then it goes
    wait_for(lambda: pod_uid(core) not in (uid, None), what="new pod")
    cluster.wait_ready()
    uid = pod_uid(core)
    core.delete_namespaced_pod("redis-0", NS, grace_period_seconds=0)
    wait_for(lambda: pod_uid(core) not in (uid, None), what="new pod")
    cluster.wait_ready()
    assert cluster.restarts() == 2


def test_deployment_status_follows_replicas(cluster: SandboxCluster, apps: Any) -> None:
    apps.patch_namespaced_deployment("treebeard-api", NS, {"spec": {"replicas": 5}})

    def scaled() -> bool:
        deploy = apps.read_namespaced_deployment("treebeard-api", NS)
        status = deploy.status
        return bool(
            status.observed_generation == deploy.metadata.generation
            and status.ready_replicas == status.updated_replicas == status.replicas == 5
        )

    wait_for(scaled, what="deployment scaled")


def test_fault_down_stays_down_until_the_pod_is_restarted(
    cluster: SandboxCluster, core: Any, apps: Any
) -> None:
    cluster.fault("down")
    assert apps.read_namespaced_stateful_set("redis", NS).metadata.annotations == {
        FAULT_ANNOTATION: "down"
    }
    assert not answers(cluster)
    wait_for(lambda: redis_state(core).state.terminated is not None, what="terminated")
    time.sleep(0.5)
    assert not answers(cluster)  # nothing restarts it by itself
    assert not redis_state(core).ready
    wait_for(lambda: not core.read_namespaced_endpoints("redis", NS).subsets[0].addresses)
    core.delete_namespaced_pod("redis-0", NS)
    cluster.wait_ready()
    assert answers(cluster)


def test_fault_crashloop_survives_a_rollout_restart_until_force_delete(
    cluster: SandboxCluster, core: Any, apps: Any
) -> None:
    cluster.fault("crashloop")
    wait_for(
        lambda: (
            (redis_state(core).state.waiting or client.V1ContainerStateWaiting()).reason
            == "CrashLoopBackOff"
        )
    )
    wait_for(lambda: redis_state(core).restart_count >= 2, what="crash loop restarts")
    assert "BackOff" in event_reasons(core, "redis-0")
    apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t1"}}
                }
            }
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod("redis-0", NS).metadata.deletion_timestamp is not None
    )
    time.sleep(0.5)
    assert core.read_namespaced_pod("redis-0", NS).metadata.deletion_timestamp is not None  # stuck
    assert not answers(cluster)
    core.delete_namespaced_pod("redis-0", NS, grace_period_seconds=0)
    cluster.wait_ready()
    assert answers(cluster)


def test_fault_oom_kills_once_then_fills_memory(cluster: SandboxCluster, core: Any) -> None:
    cluster.fault("oom")
    state = redis_state(core)
    assert state.last_state.terminated.reason == "OOMKilled"
    assert state.restart_count == 1
    assert "OOMKilled" in event_reasons(core, "redis-0")
    with cluster.redis() as conn, pytest.raises(redis.exceptions.OutOfMemoryError):
        conn.set("one-more", "x" * 1024)


def test_faults_connections_and_slow(cluster: SandboxCluster) -> None:
    cluster.fault("connections")
    with cluster.redis() as conn:
        assert int(conn.info("clients")["connected_clients"]) >= 62
    cluster.fault("slow")
    with cluster.redis() as conn:
        assert int(conn.info("clients")["connected_clients"]) < 10  # released on change
        assert any(entry["duration"] >= 20_000 for entry in conn.slowlog_get(10))


def test_fault_pvc_unbound_leaves_the_pod_pending_until_cleared(
    cluster: SandboxCluster, core: Any
) -> None:
    cluster.fault("pvc-unbound")
    assert (
        core.read_namespaced_persistent_volume_claim("data-redis-0", NS).status.phase == "Pending"
    )
    wait_for(lambda: core.read_namespaced_pod("redis-0", NS).status.phase == "Pending")
    scheduled = core.read_namespaced_pod("redis-0", NS).status.conditions[0]
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert not answers(cluster)
    cluster.fault("clear")
    cluster.wait_ready()
    assert answers(cluster)


def test_stop_leaves_no_redis_behind(tmp_path: Path) -> None:
    cluster = SandboxCluster(tmp_path / "sandbox").start()
    pid = cluster.controller.runtime(NS, "redis-0").process.pid
    assert pid is not None
    cluster.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_cli_up_json_fault_and_ctrl_c(tmp_path: Path) -> None:
    root = tmp_path / "cli"
    sandbox = [sys.executable, "-m", "sandbox", "--dir", str(root)]
    proc = subprocess.Popen(
        [*sandbox, "up", "--json"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) == {
            "kubeconfig",
            "redis_url",
            "namespace",
            "statefulset",
            "api_deployment",
        }
        assert Path(info["kubeconfig"]).exists()
        conn = redis.Redis.from_url(info["redis_url"])
        assert conn.ping()
        port = int(info["redis_url"].rsplit(":", 1)[1].split("/")[0])
        subprocess.run([*sandbox, "fault", "down"], check=True, capture_output=True, timeout=30)
        wait_for(lambda: not _pings(conn), what="redis down")
        subprocess.run([*sandbox, "fault", "clear"], check=True, capture_output=True, timeout=30)
        wait_for(lambda: _pings(conn), what="redis back")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        with pytest.raises(TimeoutError):
            wait_for_port(port, timeout=0.3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _pings(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False
