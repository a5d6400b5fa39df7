"""The `failover` scenario's topology: a master and two replicas under three Sentinels with
the runbook's own production timings (down-after 5 s, failover-timeout 10 s), the worker
held to the Role made for a three-pod target, and what the demo says once it is over: which
pod is the master now, and that the Service the API uses points at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
import yaml
from kubernetes import client

from sandbox.cluster import SandboxCluster
from sandbox.manifests import SandboxNames
from worker.rbac import roles_for
from worker.settings.runbook import Settings

DOWN_AFTER_MS = 5000
FAILOVER_TIMEOUT_MS = 10000


def cluster_options(state: Path) -> dict[str, Any]:
    """SandboxCluster's arguments for the topology, with the Role `runbook rbac` prints."""
    names = SandboxNames()
    route = {
        "name": "demo",
        "redis_url": "redis://127.0.0.1:6379/0",
        "namespace": names.namespace,
        "statefulset": names.statefulset,
        "api_deployment": names.api_deployment,
        "pods": 3,
    }
    role = state / "role-sentinel.yaml"
    role.write_text(yaml.safe_dump_all(roles_for(Settings(targets=[route]))))
    return {
        "sentinel": True,
        "role_file": role,
        "sentinel_down_after_ms": DOWN_AFTER_MS,
        "sentinel_failover_timeout_ms": FAILOVER_TIMEOUT_MS,
    }


def target_fields(cluster: SandboxCluster) -> dict[str, Any]:
    """What a Sentinel-managed target adds to its `targets:` entry."""
    if cluster.sentinels is None:
        return {}
    return {
        "pods": 3,
        "sentinel": {
            "master_name": cluster.sentinel_master_name,
            "addresses": cluster.sentinel_addresses,
            "master_service": cluster.names.master_service,
        },
    }


def after_lines(cluster: SandboxCluster) -> list[str]:
    """Where the master is now, by its own answer and by the Service the API reaches it by."""
    if cluster.sentinels is None:
        return []
    service = cluster.names.master_service
    with cluster.api_client() as api:
        found = client.CoreV1Api(api).read_namespaced_endpoints(service, cluster.names.namespace)
    ready = [
        str(a.target_ref.name)
        for subset in found.subsets or []
        for a in subset.addresses or []
        if a.target_ref is not None
    ]
    return [
        f"the master is now {cluster.master_pod()}; service {service} (the API's REDIS_URL) "
        f"points at {', '.join(ready) or 'no ready pod'}",
        f"redis-0, the old master, answers as a {role_of(cluster, 'redis-0')}",
    ]


def role_of(cluster: SandboxCluster, pod: str) -> str:
    try:
        with redis.Redis(port=cluster.member_port(pod), socket_timeout=2) as conn:
            role = conn.info("replication").get("role")
    except redis.RedisError:
        return "server that does not answer"
    return "replica" if role == "slave" else str(role)
