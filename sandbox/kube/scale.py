"""The `scale` subresource of StatefulSets and Deployments (`kubectl scale`): an
autoscaling/v1 Scale read from, and written into, the object's `spec.replicas`."""

from __future__ import annotations

from typing import Any

JSONDict = dict[str, Any]
KEPT_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def scale_of(obj: JSONDict) -> JSONDict:
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    labels = ((spec.get("selector") or {}).get("matchLabels")) or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in KEPT_META if k in meta},
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def with_replicas(obj: JSONDict, scale: JSONDict) -> JSONDict:
    """The object as the Scale asks: only `spec.replicas` changes (and the resourceVersion
    the Scale names, so a stale one conflicts)."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ValueError(f"spec.replicas: must be a non-negative integer, not {replicas!r}")
    wanted = (scale.get("metadata") or {}).get("resourceVersion")
    meta = {**obj["metadata"], **({"resourceVersion": wanted} if wanted else {})}
    return {**obj, "metadata": meta, "spec": {**(obj.get("spec") or {}), "replicas": replicas}}
