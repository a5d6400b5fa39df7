"""Maintenance mode, the runbook's step at 30 minutes: the API tells its users it is down for
maintenance instead of failing slowly. Either an env var the API reads, or a maintenance
Deployment the API's Service is pointed at. What it changes is written, as it was, into an
annotation on the object first, so ending it puts exactly that back (and a retry finds its
work done).

Pure plans here, as in plans.py; KubernetesActivities reads, patches and reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from activities.kubernetes.client import JSONDict, JSONPatch, pointer
from activities.kubernetes.plans import env_value, plan_env_vars, plan_replicas, replicas_of
from contracts.kubernetes import MAINTENANCE_ENV, MAINTENANCE_REPLICAS, MAINTENANCE_SELECTOR


def annotation(obj: Mapping[str, Any], key: str) -> Any:
    """An annotation written by plan_annotate (JSON), or None."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def plan_annotate(obj: Mapping[str, Any], key: str, value: Any) -> JSONPatch:
    """Remember `value` under `key`, once: a retry keeps the first (the true original)."""
    meta = obj["metadata"]
    if (meta.get("annotations") or {}).get(key) is not None:
        return []
    written = json.dumps(value, sort_keys=True)
    if meta.get("annotations") is None:
        version = meta["resourceVersion"]
        guard = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
        return [guard, {"op": "add", "path": "/metadata/annotations", "value": {key: written}}]
    return [{"op": "add", "path": pointer("metadata", "annotations", key), "value": written}]


def plan_unannotate(obj: Mapping[str, Any], key: str) -> JSONPatch:
    found = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    if found is None:
        return []
    path = pointer("metadata", "annotations", key)
    return [{"op": "test", "path": path, "value": found}, {"op": "remove", "path": path}]


# ---- env mode: the API container's env ---------------------------------------------------


def plan_enter_env(deploy: JSONDict, container: str, env: Mapping[str, str]) -> JSONPatch:
    before = {k: env_value(deploy, container, k) for k in env}
    return plan_annotate(deploy, MAINTENANCE_ENV, before) + plan_env_vars(deploy, container, env)


def plan_end_env(deploy: JSONDict, container: str, env: Mapping[str, str]) -> JSONPatch:
    """The env as it was before (only the names maintenance sets: whoever may edit the
    annotation must not steer this to other env vars); nothing when it was not recorded."""
    before = annotation(deploy, MAINTENANCE_ENV)
    if not isinstance(before, dict):
        return []
    back = {k: before.get(k) for k in env}
    return plan_env_vars(deploy, container, back) + plan_unannotate(deploy, MAINTENANCE_ENV)


# ---- routed mode: a maintenance Deployment behind the API's Service ------------------------


def plan_scale_up(deploy: JSONDict, replicas: int) -> JSONPatch:
    ops = plan_annotate(deploy, MAINTENANCE_REPLICAS, replicas_of(deploy))
    if replicas_of(deploy) >= replicas:
        return ops
    return ops + plan_replicas(deploy, replicas)


def plan_scale_back(deploy: JSONDict) -> JSONPatch:
    before = annotation(deploy, MAINTENANCE_REPLICAS)
    if not isinstance(before, int):
        return []
    return plan_replicas(deploy, before) + plan_unannotate(deploy, MAINTENANCE_REPLICAS)


def selector_of(service: Mapping[str, Any]) -> dict[str, str]:
    return dict((service.get("spec") or {}).get("selector") or {})


def plan_point(service: JSONDict, selector: Mapping[str, str]) -> JSONPatch:
    current = selector_of(service)
    ops = plan_annotate(service, MAINTENANCE_SELECTOR, current)
    if current == dict(selector):
        return ops
    return [*ops, {"op": "test", "path": "/spec/selector", "value": current},
            {"op": "replace", "path": "/spec/selector", "value": dict(selector)}]  # fmt: skip


def plan_point_back(service: JSONDict) -> JSONPatch:
    before = annotation(service, MAINTENANCE_SELECTOR)
    if not isinstance(before, dict):
        return []
    ops = plan_unannotate(service, MAINTENANCE_SELECTOR)
    if selector_of(service) == before:
        return ops
    return [{"op": "test", "path": "/spec/selector", "value": selector_of(service)},
            {"op": "replace", "path": "/spec/selector", "value": before}, *ops]  # fmt: skip
