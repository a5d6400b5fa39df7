"""Discovery as kube-apiserver serves it, so a real kubectl finds every type the sandbox
serves: the core group at `v1` (never `/v1`), each group with its preferred version, and each
type with its singular name, short names, verbs and subresources; a current server version."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.kube.types import ResourceType

JSONDict = dict[str, Any]

# kube-apiserver's short names for the types the runbook looks at.
SHORT_NAMES = {
    "pods": ["po"],
    "services": ["svc"],
    "endpoints": ["ep"],
    "persistentvolumeclaims": ["pvc"],
    "configmaps": ["cm"],
    "events": ["ev"],
    "namespaces": ["ns"],
    "statefulsets": ["sts"],
    "deployments": ["deploy"],
    "networkpolicies": ["netpol"],
    "horizontalpodautoscalers": ["hpa"],
}
# kube-apiserver's `all` category (`kubectl get all`), of the types the sandbox serves.
CATEGORIES = {"pods", "services", "statefulsets", "deployments", "horizontalpodautoscalers", "jobs"}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"]}
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def core_versions() -> JSONDict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _versions(types: Iterable[ResourceType], group: str) -> list[str]:
    return sorted({t.version for t in types if t.group == group}, reverse=True)


def _group(types: list[ResourceType], name: str) -> JSONDict:
    versions = _versions(types, name)
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def group_list(types: Iterable[ResourceType]) -> JSONDict:
    served = list(types)
    names = sorted({t.group for t in served if t.group})
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(served, n) for n in names],
    }


def group(types: Iterable[ResourceType], name: str) -> JSONDict | None:
    served = list(types)
    if not name or name not in {t.group for t in served}:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(served, name)}


def resource_list(types: Iterable[ResourceType], group: str, version: str) -> JSONDict | None:
    chosen = [t for t in types if t.group == group and t.version == version]
    if not chosen:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [r for t in sorted(chosen, key=lambda t: t.plural) for r in _resources(t)],
    }


def _resources(t: ResourceType) -> list[JSONDict]:
    main: JSONDict = {
        "name": t.plural,
        "singularName": t.kind.lower(),
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": ["create"] if t.plural.endswith("reviews") else VERBS,
    }
    if t.plural in SHORT_NAMES:
        main["shortNames"] = SHORT_NAMES[t.plural]
    if t.plural in CATEGORIES:
        main["categories"] = ["all"]
    subs = [
        {
            "name": f"{t.plural}/{sub}",
            "singularName": "",
            "namespaced": t.namespaced,
            "kind": "Scale" if sub == "scale" else t.kind,
            "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
        }
        for sub in t.subresources
    ]
    return [main, *subs]
