"""The sandbox's Sentinel topology: three real redis-server pods replicating under three real
Sentinels, and the faults that break it (master-down, no-quorum, replica-cut-off), seen the
way an operator sees them: INFO replication on each process, what the Sentinels answer, the
pods and Endpoints through the official client, `kubectl get pods`."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client

from sandbox import processes
from sandbox.cluster import SandboxCluster
from sandbox.manifests import ROLE_LABEL

NS = "treebeard-production"
PODS = ["redis-0", "redis-1", "redis-2"]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until `check` holds; returns the seconds it took."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"{what} not met after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - began


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path / "sandbox", sentinel=True) as running:
        yield running


@pytest.fixture
def core(sentinel_cluster: SandboxCluster) -> Iterator[Any]:
    with sentinel_cluster.api_client() as api:
        yield client.CoreV1Api(api)


def replication(cluster: SandboxCluster, pod: str) -> dict[str, Any]:
    port = cluster.member_port(pod)
    with redis.Redis(port=port, decode_responses=True, socket_timeout=1) as conn:
        return dict(conn.info("replication"))


def sentinel(address: str, *args: str) -> Any:
    port = int(address.rsplit(":", 1)[1])
    with redis.Redis(port=port, decode_responses=True, socket_timeout=1) as conn:
        return conn.execute_command("SENTINEL", *args)


def named_master_port(cluster: SandboxCluster) -> int | None:
    """The master's port as the first running Sentinel answers it."""
    for address in cluster.sentinel_addresses:
        try:
            reply = sentinel(address, "get-master-addr-by-name", cluster.sentinel_master_name)
        except (redis.RedisError, OSError):
            continue
        return int(reply[1]) if reply else None
    return None


def pod_of_port(cluster: SandboxCluster, port: int | None) -> str:
    return next(pod for pod in PODS if cluster.member_port(pod) == port)


def ready(core: Any, pod: str) -> bool:
    try:
        found = core.read_namespaced_pod(pod, NS)
    except client.ApiException:
        return False
    conditions = found.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def role_label(core: Any, pod: str) -> str | None:
    labels = core.read_namespaced_pod(pod, NS).metadata.labels or {}
    return labels.get(ROLE_LABEL)


def ready_endpoints(core: Any, service: str) -> list[tuple[str, int]]:
    """(pod, port) of each ready address of the Service."""
    subsets = core.read_namespaced_endpoints(service, NS).subsets or []
    return [
        (address.target_ref.name, subset.ports[0].port)
        for subset in subsets
        for address in subset.addresses or []
    ]


def replica_of(cluster: SandboxCluster, pod: str, master: str) -> bool:
    """`pod` replicates `master` with its link up."""
    try:
        info = replication(cluster, pod)
    except (redis.RedisError, OSError):
        return False
    return (
        info.get("role") == "slave"
        and info.get("master_link_status") == "up"
        and int(info["master_port"]) == cluster.member_port(master)
    )


def lag_of(cluster: SandboxCluster, master: str, replica: str) -> int | None:
    """The replica's lag= in the master's INFO replication (None if the master lists none)."""
    port = cluster.member_port(replica)
    info = replication(cluster, master)
    for key, value in info.items():
        if key.startswith("slave") and isinstance(value, dict) and int(value["port"]) == port:
            return int(value["lag"])
    return None


def test_three_pods_replicate_under_three_sentinels(tmp_path: Path) -> None:
    with SandboxCluster(tmp_path / "sandbox", sentinel=True) as cluster:
        assert [replication(cluster, pod)["role"] for pod in PODS] == ["master", "slave", "slave"]
        for pod in PODS[1:]:
            assert replica_of(cluster, pod, "redis-0"), replication(cluster, pod)
        assert replication(cluster, "redis-0")["connected_slaves"] == 2
        assert cluster.master_pod() == "redis-0"
        assert named_master_port(cluster) == cluster.member_port("redis-0")
        addresses = cluster.sentinel_addresses
        assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
        described = cluster.describe()
        assert described["sentinels"] == ",".join(addresses)
        assert described["master_name"] == cluster.sentinel_master_name == "mymaster"

        with cluster.api_client() as api:
            core: Any = client.CoreV1Api(api)  # read through Any, as the other tests do
            assert [role_label(core, p) for p in PODS] == ["master", "replica", "replica"]
            master_port = cluster.member_port("redis-0")
            assert ready_endpoints(core, "redis-master") == [("redis-0", master_port)]
            assert sorted(ready_endpoints(core, "redis")) == sorted(
                (p, cluster.member_port(p)) for p in PODS
            )
            api_pod = core.list_namespaced_pod(NS, label_selector="app=treebeard-api").items[0]
            api_env = {e.name: e.value for e in api_pod.spec.containers[0].env}
            assert api_env["REDIS_HOST"] == "redis-master"
            assert api_env["REDIS_URL"] == "redis://redis-master:6379/0"

        env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.root)}
        run = subprocess.run(
            [processes.kubectl(), "get", "pods", "-n", NS, "-l", "app=redis", "--no-headers"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        rows = [line.split() for line in run.stdout.splitlines()]
        assert [(r[0], r[1], r[2]) for r in rows] == [(p, "2/2", "Running") for p in PODS], rows

        sentinels = cluster.sentinels
        assert sentinels is not None
        pids = [s.pid for s in sentinels.members]
        pids += [cluster.controller.runtime(NS, p).process.pid for p in PODS]
    for pid in pids:  # every Sentinel and redis-server stopped with the cluster
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_master_down_fails_over_and_the_old_master_rejoins_as_a_replica(
    sentinel_cluster: SandboxCluster, core: Any
) -> None:
    cluster = sentinel_cluster
    old_port = cluster.member_port("redis-0")
    cluster.fault("master-down")
    took = wait_for(
        lambda: named_master_port(cluster) not in (None, old_port), 20, "a Sentinel failover"
    )
    new_master = pod_of_port(cluster, named_master_port(cluster))
    print(f"failover after {took:.1f}s to {new_master}")
    wait_for(lambda: cluster.master_pod() == new_master, 10, "the new master says so")
    assert not ready(core, "redis-0")
    assert role_label(core, "redis-0") == "master"  # as it last answered: nobody relabels it
    state = next(s for s in core.read_namespaced_pod("redis-0", NS).status.container_statuses
                 if s.name == "redis").state  # fmt: skip
    assert state.terminated is not None and state.terminated.exit_code == 137
    others = [p for p in PODS if p not in ("redis-0", new_master)]
    wait_for(lambda: replica_of(cluster, others[0], new_master), 10, "the replica follows")
    master_address = (new_master, cluster.member_port(new_master))
    wait_for(
        lambda: ready_endpoints(core, "redis-master") == [master_address],
        5,
        "redis-master's Endpoints on the new master",
    )

    core.delete_namespaced_pod("redis-0", NS)
    wait_for(
        lambda: ready(core, "redis-0") and replica_of(cluster, "redis-0", new_master),
        15,
        "redis-0 back as a replica of the new master",
    )
    assert cluster.member_port("redis-0") == old_port
    assert cluster.master_pod() == new_master
    wait_for(lambda: role_label(core, "redis-0") == "replica", 5, "redis-0 labelled replica")
    subsets = core.read_namespaced_endpoints("redis-master", NS).subsets
    assert len(subsets) == 1 and not subsets[0].not_ready_addresses, subsets
    assert ready_endpoints(core, "redis-master") == [master_address]


def forced_failover(address: str) -> bool:
    """SENTINEL FAILOVER, which answers NOGOODSLAVE while the Sentinel's INFO of the replicas
    is older than 5 s (it refreshes it every 10 s until it sees their link to the master is
    down, then every second): what a person retries too."""
    try:
        return bool(sentinel(address, "failover", "mymaster") == "OK")
    except redis.ResponseError as err:
        if str(err).startswith("NOGOODSLAVE"):
            return False
        raise


def test_no_quorum_needs_a_forced_failover(sentinel_cluster: SandboxCluster, core: Any) -> None:
    cluster = sentinel_cluster
    sentinels = cluster.sentinels
    assert sentinels is not None
    old_port = cluster.member_port("redis-0")
    cluster.fault("no-quorum")
    live = sentinels.running()
    assert len(live) == 1
    down_after = sentinels.down_after_ms / 1000
    deadline = time.monotonic() + 3 * down_after
    while time.monotonic() < deadline:  # the master is down, and stays the master
        assert named_master_port(cluster) == old_port
        time.sleep(0.1)
    state = sentinel(live[0].address, "master", cluster.sentinel_master_name)
    assert "s_down" in state["flags"] and "o_down" not in state["flags"], state
    assert cluster.master_pod() is None  # the killed master was the only one

    took = wait_for(lambda: forced_failover(live[0].address), 12, "SENTINEL FAILOVER taken")
    print(f"SENTINEL FAILOVER accepted after {took:.1f}s more")
    wait_for(lambda: named_master_port(cluster) != old_port, 10, "the forced failover")
    new_master = pod_of_port(cluster, named_master_port(cluster))
    wait_for(lambda: cluster.master_pod() == new_master, 10, "a replica promoted")

    addresses = cluster.sentinel_addresses
    cluster.fault("clear")
    assert len(sentinels.running()) == 3 and cluster.sentinel_addresses == addresses
    wait_for(lambda: replica_of(cluster, "redis-0", new_master), 15, "redis-0 a replica again")
    cluster.wait_ready(20)  # all three Sentinels agree again, quorum reachable


def test_replica_cut_off_lags_until_its_pod_is_deleted(
    sentinel_cluster: SandboxCluster, core: Any
) -> None:
    cluster = sentinel_cluster
    assert cluster.master_pod() == "redis-0"
    cluster.fault("replica-cut-off")
    assert cluster.controller.runtime(NS, "redis-2").frozen
    took = wait_for(lambda: (lag_of(cluster, "redis-0", "redis-2") or 0) > 1, 6, "lag > 1")
    print(f"redis-2 lag > 1 s after {took:.1f}s")
    assert ready(core, "redis-1") and replica_of(cluster, "redis-1", "redis-0")
    wait_for(lambda: not ready(core, "redis-2"), 5, "redis-2 not Ready")

    core.delete_namespaced_pod("redis-2", NS)
    wait_for(
        lambda: (
            ready(core, "redis-2")
            and replica_of(cluster, "redis-2", "redis-0")
            and (lag_of(cluster, "redis-0", "redis-2") or 0) <= 1
        ),
        15,
        "redis-2 back in sync",
    )
    assert not cluster.controller.runtime(NS, "redis-2").frozen
