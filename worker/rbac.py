"""The worker's Kubernetes Role, made from the targets it is configured for.

The Role names its objects: each target's StatefulSet (watched by name, as kube-apiserver
authorizes a `metadata.name` watch), that StatefulSet's pods and their logs, the API
Deployment, the Redis ConfigMap. What a name cannot restrict is read-only: listing and
watching pods by label, listing events and NetworkPolicies, reading the PVCs and endpoints a
pod points at, and the logs of the API's pods, whose names are generated (leave them out with
`workload.read_api_logs: false`), and the Jobs of a Job warmer (created with a name made
per warm step, then read). `runbook rbac` prints it for your runbook.yaml;
deploy/k8s/rbac/role.yaml is this for the shipped one, kept equal by a test.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from worker.settings.runbook import Settings, TargetRoute

ROLE_NAME = "redis-runbook"


def _rule(group: str, resource: str, verbs: list[str], names: list[str] | None = None) -> Any:
    rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": verbs}
    if names is not None:
        rule["resourceNames"] = sorted(set(names))
    return rule


def rules_for(routes: list[TargetRoute], job_warmers: bool = False) -> list[dict[str, Any]]:
    """The rules one namespace's targets need, in a stable order; `job_warmers`: one of them
    warms its cache with a Job."""
    statefulsets = [r.statefulset for r in routes]
    pods = [f"{r.statefulset}-{i}" for r in routes for i in range(r.pods)]
    apis = [r.api_deployment for r in routes if r.api_deployment]
    modes = [r.workload.maintenance for r in routes if r.workload.maintenance]
    apis += [m.deployment for m in modes if m.deployment]  # scaled up for maintenance mode
    services = [m.service for m in modes if m.service]  # pointed at the maintenance pods
    hpas = [r.workload.api_hpa for r in routes if r.workload.api_hpa]
    configmaps = [r.workload.config_map for r in routes if r.workload.config_map]
    api_logs = any(r.api_deployment and r.workload.read_api_logs for r in routes)
    rules = [_rule("apps", "statefulsets", ["get", "patch", "watch"], statefulsets)]
    if apis:
        rules.append(_rule("apps", "deployments", ["get", "patch"], apis))
    if hpas:  # enable_fallback raises its minimum, scale restores it
        rules.append(_rule("autoscaling", "horizontalpodautoscalers", ["get", "patch"], hpas))
    rules += [
        _rule("", "pods", ["get", "delete"], pods),
        _rule("", "pods", ["list", "watch"]),
        # triage reads the Redis containers' log; the API's pods have generated names
        _rule("", "pods/log", ["get"], None if api_logs else pods),
        _rule("", "events", ["list"]),
        {"apiGroups": [""], "resources": ["persistentvolumeclaims", "endpoints"], "verbs": ["get"]},
    ]
    if services:
        rules.append(_rule("", "services", ["get", "patch"], services))
    if configmaps:  # compared with the live CONFIG
        rules.append(_rule("", "configmaps", ["get"], configmaps))
    if apis:  # does a NetworkPolicy shut the API out of Redis?
        rules.append(_rule("networking.k8s.io", "networkpolicies", ["list"]))
    if job_warmers:  # the warm step's Job: its name is made per step, so none can be named
        rules.append(_rule("batch", "jobs", ["create", "get"]))
    return rules


def roles_for(settings: Settings) -> list[dict[str, Any]]:
    """One Role per namespace that holds a configured target."""
    by_namespace: dict[str, list[TargetRoute]] = defaultdict(list)
    for route in settings.targets:
        by_namespace[route.namespace].append(route)
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {
                "name": ROLE_NAME,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/name": ROLE_NAME},
            },
            "rules": rules_for(
                routes, any(w.kind == "job" for r in routes for w in settings.warmers_of(r))
            ),
        }
        for namespace, routes in sorted(by_namespace.items())
    ]
