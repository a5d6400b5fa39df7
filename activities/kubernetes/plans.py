"""The JSON patches the Kubernetes steps send, as pure functions of the object they read.

Each plan changes one thing (an annotation, one limit, one env var, replicas) by its JSON
pointer, so the container's other env vars, limits and the pod's sidecars stay as they are,
and starts with `test` ops on what it read, so a concurrent change fails the patch (422)
instead of being overwritten. An empty plan means the object is already as wanted: that is
how a retried attempt finds its work done and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.kubernetes.client import K8S_INVALID, K8S_NOT_FOUND, JSONDict, JSONPatch, pointer
from activities.kubernetes.inspect import find_container, quantity_bytes, recorded_restarts
from contracts.kubernetes import (
    ORIGINAL_ENV,
    ORIGINAL_REPLICAS,
    RESTART_HISTORY,
    RESTART_HISTORY_KEPT,
    RESTARTED_AT,
)

TEMPLATE = ("spec", "template")


def _container(obj: Mapping[str, Any], name: str) -> tuple[int, JSONDict]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    found = find_container(spec, name)
    if found is None:
        kind, obj_name = obj.get("kind", "object"), obj["metadata"]["name"]
        raise ApplicationError(
            f"{kind} {obj_name} has no container named {name!r}",
            type=K8S_NOT_FOUND,
            non_retryable=True,
        )
    return found


def replicas_of(obj: Mapping[str, Any]) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def restart_stamp(sts: Mapping[str, Any]) -> str | None:
    meta = (sts.get("spec") or {}).get("template", {}).get("metadata") or {}
    value = (meta.get("annotations") or {}).get(RESTARTED_AT)
    return None if value is None else str(value)


def plan_restart(sts: Mapping[str, Any], stamp: str) -> JSONPatch:
    """kubectl rollout restart, with the workflow's stamp: nothing if it is already there."""
    template_meta = (sts.get("spec") or {}).get("template", {}).get("metadata")
    annotations = (template_meta or {}).get("annotations")
    previous = (annotations or {}).get(RESTARTED_AT)
    if previous == stamp:
        return []
    path = pointer(*TEMPLATE, "metadata", "annotations", RESTARTED_AT)
    if previous is not None:
        return [
            {"op": "test", "path": path, "value": previous},
            {"op": "replace", "path": path, "value": stamp},
        ]
    if annotations is not None:
        guard = pointer(*TEMPLATE, "metadata", "annotations")
        return [
            {"op": "test", "path": guard, "value": annotations},
            {"op": "add", "path": path, "value": stamp},
        ]
    if template_meta is not None:
        return [
            {"op": "test", "path": pointer(*TEMPLATE, "metadata"), "value": template_meta},
            {
                "op": "add",
                "path": pointer(*TEMPLATE, "metadata", "annotations"),
                "value": {RESTARTED_AT: stamp},
            },
        ]
    return [
        {
            "op": "add",
            "path": pointer(*TEMPLATE, "metadata"),
            "value": {"annotations": {RESTARTED_AT: stamp}},
        }
    ]


def plan_record_restart(sts: Mapping[str, Any], at: str) -> JSONPatch:
    """Append a restart to the StatefulSet's own record (the per-target budget), guarded by
    the record as read, so two writers cannot lose each other's entry."""
    meta = sts["metadata"]
    annotations = meta.get("annotations")
    previous = (annotations or {}).get(RESTART_HISTORY)
    value = json.dumps([*recorded_restarts(sts), at][-RESTART_HISTORY_KEPT:])
    path = pointer("metadata", "annotations", RESTART_HISTORY)
    if previous is not None:
        return [
            {"op": "test", "path": path, "value": previous},
            {"op": "replace", "path": path, "value": value},
        ]
    if annotations is not None:
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": path, "value": value},
        ]
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
        {"op": "add", "path": "/metadata/annotations", "value": {RESTART_HISTORY: value}},
    ]


def memory_limit_of(obj: Mapping[str, Any], container: str) -> str | None:
    _, found = _container(obj, container)
    value = ((found.get("resources") or {}).get("limits") or {}).get("memory")
    return None if value is None else str(value)


def plan_memory_limit(sts: Mapping[str, Any], container: str, limit: str) -> JSONPatch:
    """Set resources.limits.memory of one container, found by name, to an absolute value."""
    index, found = _container(sts, container)
    resources = found.get("resources")
    limits = (resources or {}).get("limits")
    if (limits or {}).get("memory") == limit:
        return []
    base = pointer(*TEMPLATE, "spec", "containers", index)
    request = ((resources or {}).get("requests") or {}).get("memory")
    if request is not None and _bytes(request) > _bytes(limit):
        raise ApplicationError(
            f"memory limit {limit} would be below the container's request {request}",
            type=K8S_INVALID,
            non_retryable=True,
        )
    ops: JSONPatch = [{"op": "test", "path": base, "value": found}]
    if resources is None:
        ops.append(
            {"op": "add", "path": f"{base}/resources", "value": {"limits": {"memory": limit}}}
        )
    elif limits is None:
        ops.append({"op": "add", "path": f"{base}/resources/limits", "value": {"memory": limit}})
    else:
        ops.append({"op": "add", "path": f"{base}/resources/limits/memory", "value": limit})
    return ops


def _bytes(quantity: str) -> float:
    return float(quantity_bytes(quantity) or 0)


def env_value(obj: Mapping[str, Any], container: str, name: str) -> str | None:
    _, found = _container(obj, container)
    for env in found.get("env") or []:
        if env.get("name") == name:
            return None if env.get("value") is None else str(env["value"])
    return None


def plan_env_vars(
    obj: Mapping[str, Any], container: str, wanted: Mapping[str, str | None]
) -> JSONPatch:
    """Set (or, for None, remove) several env vars of one container in one guarded replace of
    its env list; every other env var stays as it is, in its place."""
    index, found = _container(obj, container)
    base = pointer(*TEMPLATE, "spec", "containers", index)
    env = list(found.get("env") or [])
    new = [e for e in env if e.get("name") not in wanted or wanted[e["name"]] is not None]
    new = [{"name": e["name"], "value": wanted[e["name"]]} if e.get("name") in wanted else e
           for e in new]  # fmt: skip
    present = {e.get("name") for e in new}
    new += [
        {"name": k, "value": v} for k, v in wanted.items() if v is not None and k not in present
    ]
    if new == env:
        return []
    if found.get("env") is None:
        return [{"op": "test", "path": f"{base}/name", "value": container},
                {"op": "add", "path": f"{base}/env", "value": new}]  # fmt: skip
    return [{"op": "test", "path": f"{base}/env", "value": env},
            {"op": "replace", "path": f"{base}/env", "value": new}]  # fmt: skip


def remembered_env(deploy: Mapping[str, Any]) -> dict[str, str | None] | None:
    """The fallback's env vars as they were before it (None: not there), if remembered."""
    raw = ((deploy.get("metadata") or {}).get("annotations") or {}).get(ORIGINAL_ENV)
    try:
        found = json.loads(raw) if raw else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def plan_replicas(obj: Mapping[str, Any], replicas: int) -> JSONPatch:
    current = replicas_of(obj)
    if current == replicas:
        return []
    return [
        {"op": "test", "path": "/spec/replicas", "value": current},
        {"op": "replace", "path": "/spec/replicas", "value": replicas},
    ]


def remembered_replicas(deploy: Mapping[str, Any]) -> int | None:
    value = ((deploy.get("metadata") or {}).get("annotations") or {}).get(ORIGINAL_REPLICAS)
    return int(value) if value is not None and str(value).isdigit() else None


def plan_remember_replicas(
    deploy: Mapping[str, Any], env: Mapping[str, str | None] | None = None
) -> JSONPatch:
    """Write the replicas before the fallback (and the env vars it changes) into
    annotations, once: a retried enable_fallback then still knows the originals after it
    scaled and switched."""
    meta = deploy["metadata"]
    current = replicas_of(deploy)
    keep: dict[str, str] = {}
    if remembered_replicas(deploy) is None:
        keep[ORIGINAL_REPLICAS] = str(current)
    if env and remembered_env(deploy) is None:
        keep[ORIGINAL_ENV] = json.dumps(dict(env), sort_keys=True)
    if not keep:
        return []
    guard = {"op": "test", "path": "/spec/replicas", "value": current}
    if meta.get("annotations") is None:
        return [
            guard,
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/metadata/annotations", "value": keep},
        ]
    return [guard, *({"op": "add", "path": pointer("metadata", "annotations", k), "value": v}
                     for k, v in keep.items())]  # fmt: skip


def plan_forget_replicas(deploy: Mapping[str, Any]) -> JSONPatch:
    """Drop what plan_remember_replicas wrote: the fallback is over."""
    annotations = (deploy.get("metadata") or {}).get("annotations") or {}
    ops: JSONPatch = []
    for key in (ORIGINAL_REPLICAS, ORIGINAL_ENV):
        if key in annotations:
            path = pointer("metadata", "annotations", key)
            ops += [{"op": "test", "path": path, "value": annotations[key]},
                    {"op": "remove", "path": path}]  # fmt: skip
    return ops


def container_args(sts: Mapping[str, Any], container: str) -> list[str]:
    return [str(a) for a in _container(sts, container)[1].get("args") or []]


def with_options(args: list[str], options: Mapping[str, str]) -> list[str]:
    """redis-server `--key value` args with these options set: replaced where present,
    appended where not; every other arg kept in its place."""
    result = list(args)
    for key, value in options.items():
        flag = f"--{key}"
        if flag in result and result.index(flag) + 1 < len(result):
            result[result.index(flag) + 1] = value
        else:
            result += [flag, value]
    return result


def plan_args(sts: Mapping[str, Any], container: str, options: Mapping[str, str]) -> JSONPatch:
    """Put runtime Redis settings into the container's args, so a restart keeps them."""
    index, found = _container(sts, container)
    args = container_args(sts, container)
    wanted = with_options(args, options)
    if wanted == args:
        return []
    path = pointer(*TEMPLATE, "spec", "containers", index, "args")
    if found.get("args") is None:
        return [{"op": "add", "path": path, "value": wanted}]
    return [{"op": "test", "path": path, "value": found["args"]},
            {"op": "replace", "path": path, "value": wanted}]  # fmt: skip


HPA_ORIGINAL_MIN = "redis-runbook.io/original-min-replicas"


def plan_hpa_at_least(hpa: Mapping[str, Any], replicas: int) -> JSONPatch:
    """An autoscaler on the API would scale the fallback replicas away: raise its minimum
    (and its maximum, if below) to the fallback count, remembering the minimum it had, once."""
    spec, meta = hpa.get("spec") or {}, hpa["metadata"]
    current = int(spec.get("minReplicas") or 1)
    ops: JSONPatch = []
    if (meta.get("annotations") or {}).get(HPA_ORIGINAL_MIN) is None:
        ops.append({"op": "test", "path": "/metadata/resourceVersion",
                    "value": meta["resourceVersion"]})  # fmt: skip
        if meta.get("annotations") is None:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        path = pointer("metadata", "annotations", HPA_ORIGINAL_MIN)
        ops.append({"op": "add", "path": path, "value": str(current)})
    if current < replicas:
        ops.append({"op": "add", "path": "/spec/minReplicas", "value": replicas})
    if int(spec.get("maxReplicas") or 0) < replicas:
        ops.append({"op": "add", "path": "/spec/maxReplicas", "value": replicas})
    return ops


def plan_hpa_restore(hpa: Mapping[str, Any]) -> JSONPatch:
    """Give the autoscaler back the minimum it had before the fallback."""
    remembered = (hpa["metadata"].get("annotations") or {}).get(HPA_ORIGINAL_MIN)
    if remembered is None:
        return []
    path = pointer("metadata", "annotations", HPA_ORIGINAL_MIN)
    return [
        {"op": "test", "path": path, "value": remembered},
        {"op": "add", "path": "/spec/minReplicas", "value": int(remembered)},
        {"op": "remove", "path": path},
    ]
