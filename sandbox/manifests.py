"""The objects a fresh sandbox cluster holds: a Redis StatefulSet beside the API that uses it.

Both workloads carry a sidecar and several env vars and limits on purpose, so a patch that
drops a sidecar, an env var or a limit shows in the tests instead of passing silently.

With `sentinel=True` the StatefulSet runs three pods that replicate under Redis Sentinel: its
pod template carries SENTINEL_ANNOTATION (the master's name the Sentinels know), which is what
tells the controller to start a pod as a replica of the current master; each pod is labelled
with its role (ROLE_LABEL), and a second Service selects the master by that label, so the API,
pointed at it, follows a failover.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sandbox.redis_conf import quantity_bytes

JSONDict = dict[str, Any]

FAULT_ANNOTATION = "sandbox.redis-runbook.io/fault"
RESTARTS_ANNOTATION = "sandbox.redis-runbook.io/restarts"
PORT_ANNOTATION = "sandbox.redis-runbook.io/redis-port"
SENTINEL_ANNOTATION = "sandbox.redis-runbook.io/sentinel"
SENTINEL_MASTER = "mymaster"
SENTINEL_REPLICAS = 3
ROLE_LABEL = "redis-role"  # master | replica, kept by the controller from INFO replication
CONFIG_DIR = "/usr/local/etc/redis"


class SandboxNames(BaseModel):
    """Where things are in the sandbox; `python -m sandbox up --json` prints these."""

    namespace: str = "treebeard-production"
    statefulset: str = "redis"
    service: str = "redis"
    master_service: str = "redis-master"  # the Sentinel topology's: the master pod only
    api_deployment: str = "treebeard-api"
    redis_container: str = "redis"
    api_container: str = "api"
    volume_claim: str = "data"
    config_map: str = "redis-config"

    def pvc_name(self, ordinal: int = 0) -> str:
        return f"{self.volume_claim}-{self.statefulset}-{ordinal}"


def namespace(names: SandboxNames) -> JSONDict:
    return {"metadata": {"name": names.namespace}, "status": {"phase": "Active"}}


def redis_configmap(
    names: SandboxNames, memory_limit: str = "32Mi", sentinel: bool = False
) -> JSONDict:
    """The redis.conf the Redis pod starts from: maxmemory at 3/4 of the memory limit, no
    eviction, AOF persistence (DBSIZE survives a restart), 64 clients. `sentinel`: a replica's
    full sync starts at once, not after the default 5 s wait for more replicas to join."""
    maxmemory = quantity_bytes(memory_limit) * 3 // 4
    size = f"{maxmemory // 2**20}mb" if maxmemory % 2**20 == 0 else str(maxmemory)
    conf = "\n".join([
        "# redis.conf for the cache in front of the treebeard database",
        f"maxmemory {size}",
        "maxmemory-policy noeviction",
        "appendonly yes",
        "maxclients 64",
        *(["repl-diskless-sync-delay 0"] if sentinel else []),
        "",
    ])  # fmt: skip
    return {
        "metadata": {
            "name": names.config_map,
            "namespace": names.namespace,
            "labels": {"app": names.statefulset},
        },
        "data": {"redis.conf": conf},
    }


def redis_statefulset(
    names: SandboxNames, memory_limit: str = "32Mi", sentinel: bool = False
) -> JSONDict:
    """Redis started from the `redis-config` ConfigMap's redis.conf (mounted, as the runbook's
    `kubectl get configmap redis-config` expects), plus an exporter sidecar. Args override the
    file, as redis-server applies them: the runbook's steps that must survive a restart put
    their settings there. `sentinel`: three pods replicating under Sentinel."""
    labels = {"app": names.statefulset, "app.kubernetes.io/component": "cache"}
    template_meta: JSONDict = {"labels": labels}
    if sentinel:
        template_meta["annotations"] = {SENTINEL_ANNOTATION: SENTINEL_MASTER}
    return {
        "metadata": {"name": names.statefulset, "namespace": names.namespace, "labels": labels},
        "spec": {
            "replicas": SENTINEL_REPLICAS if sentinel else 1,
            "serviceName": names.service,
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": names.statefulset}},
            "template": {
                "metadata": template_meta,
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": names.redis_container,
                            "image": "redis:7.0",
                            "command": ["redis-server", f"{CONFIG_DIR}/redis.conf"],
                            "args": ["--enable-debug-command", "yes"],
                            "env": [{"name": "REDIS_LOGLEVEL", "value": "notice"}],
                            "ports": [{"name": "redis", "containerPort": 6379}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": memory_limit},
                                "limits": {"cpu": "500m", "memory": memory_limit},
                            },
                            "volumeMounts": [
                                {"name": names.volume_claim, "mountPath": "/data"},
                                {"name": "config", "mountPath": CONFIG_DIR},
                            ],
                        },
                        {
                            "name": "exporter",
                            "image": "oliver006/redis_exporter:v1.62.0",
                            "env": [{"name": "REDIS_ADDR", "value": "redis://localhost:6379"}],
                            "ports": [{"name": "metrics", "containerPort": 9121}],
                            "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                        },
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": names.config_map}}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": names.volume_claim},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
        "status": {"replicas": 0, "availableReplicas": 0},
    }  # fmt: skip


def redis_service(names: SandboxNames, master: bool = False) -> JSONDict:
    """The Service of every Redis pod, or (`master`) of the one labelled master."""
    selector = {"app": names.statefulset}
    if master:
        selector[ROLE_LABEL] = "master"
    return {
        "metadata": {
            "name": names.master_service if master else names.service,
            "namespace": names.namespace,
        },
        "spec": {
            "selector": selector,
            "ports": [{"name": "redis", "port": 6379, "targetPort": 6379, "protocol": "TCP"}],
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }


def redis_pvc(names: SandboxNames, ordinal: int = 0) -> JSONDict:
    return {
        "metadata": {
            "name": names.pvc_name(ordinal),
            "namespace": names.namespace,
            "labels": {"app": names.statefulset},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "standard",
            "volumeName": f"pv-{names.pvc_name(ordinal)}",
        },
        "status": {
            "phase": "Bound",
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
        },
    }


def api_deployment(names: SandboxNames, replicas: int = 3, sentinel: bool = False) -> JSONDict:
    """`sentinel`: the API reaches Redis through the master's Service, so it follows a
    failover."""
    labels = {"app": names.api_deployment}
    host = names.master_service if sentinel else names.service
    return {
        "metadata": {"name": names.api_deployment, "namespace": names.namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": names.api_container,
                            "image": "treebeard/api:1.4.2",
                            "env": [
                                {"name": "DATABASE_URL", "value": "postgres://db:5432/treebeard"},
                                {"name": "CACHE_ENABLED", "value": "true"},
                                {"name": "REDIS_URL", "value": f"redis://{host}:6379/0"},
                                {"name": "REDIS_HOST", "value": host},
                            ],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                        },
                        {
                            "name": "envoy",
                            "image": "envoyproxy/envoy:v1.30.1",
                            "env": [{"name": "ENVOY_LOG_LEVEL", "value": "info"}],
                            "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
                        },
                    ]
                },
            },
        },
        "status": {},
    }


def redis_network_policy(names: SandboxNames) -> JSONDict:
    """Redis admits the API's pods on its port, and nothing else (what the runbook's `kubectl
    get networkpolicies` step looks for)."""
    return {
        "metadata": {"name": f"{names.statefulset}-from-api", "namespace": names.namespace},
        "spec": {
            "podSelector": {"matchLabels": {"app": names.statefulset}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": names.api_deployment}}}],
                    "ports": [{"protocol": "TCP", "port": 6379}],
                }
            ],
        },
    }


def default_objects(names: SandboxNames, sentinel: bool = False) -> list[tuple[str, JSONDict]]:
    """(plural, object) in creation order; `sentinel`: the three-pod Sentinel topology."""
    replicas = SENTINEL_REPLICAS if sentinel else 1
    services = [redis_service(names), *([redis_service(names, master=True)] if sentinel else [])]
    return [
        ("namespaces", namespace(names)),
        *(("persistentvolumeclaims", redis_pvc(names, i)) for i in range(replicas)),
        *(("services", service) for service in services),
        ("configmaps", redis_configmap(names, sentinel=sentinel)),
        ("statefulsets", redis_statefulset(names, sentinel=sentinel)),
        ("deployments", api_deployment(names, sentinel=sentinel)),
        ("networkpolicies", redis_network_policy(names)),
    ]
