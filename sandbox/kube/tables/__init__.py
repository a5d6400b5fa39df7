"""Server-side printing: the `meta.k8s.io/v1` Table that kube-apiserver answers when kubectl
asks for one (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`).

kubectl's human-readable `get` prints whatever columns the server sends; without a Table it
falls back to NAME and AGE, so READY, STATUS and RESTARTS (what an on-call engineer reads
first) would be missing from every `kubectl get pods` against the sandbox. The columns and
cells here are kube-apiserver's own printers (pkg/printers/internalversion/printers.go),
ported rule for rule, and Age is apimachinery's HumanDuration. The server always prints the
wide columns (priority 1); kubectl shows them with `-o wide` only.

A printed field the emulator leaves unset gets the default kube-apiserver would have stored
on write (a Service's type, a port's protocol, one replica), so a row reads as it would on a
real cluster. Everything is a pure function of the objects, the request's parameters and now.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from sandbox.kube.tables.format import (
    CREATED_DOC,
    INCLUDE_OBJECT,
    NAME,
    NAME_DOC,
    TABLE_API_VERSION,
    TABLE_GROUP,
    Column,
    JSONDict,
    Obj,
    Printer,
    TableError,
    _meta,
    human_duration,
    since,
)
from sandbox.kube.tables.kinds import (
    CONFIGMAP_COLUMNS,
    DEPLOYMENT_COLUMNS,
    ENDPOINTS_COLUMNS,
    EVENT_COLUMNS,
    HPA_COLUMNS,
    JOB_COLUMNS,
    NAMESPACE_COLUMNS,
    NETWORKPOLICY_COLUMNS,
    PVC_COLUMNS,
    SERVICE_COLUMNS,
    STATEFULSET_COLUMNS,
    configmap_cells,
    default_cells,
    deployment_cells,
    endpoints_cells,
    event_cells,
    hpa_cells,
    job_cells,
    namespace_cells,
    networkpolicy_cells,
    pvc_cells,
    service_cells,
    statefulset_cells,
)
from sandbox.kube.tables.pods import (
    POD_COLUMNS,
    pod_cells,
    pod_conditions,
)
from sandbox.kube.types import ResourceType

__all__ = ["NAME_DOC", "TableError", "human_duration", "include_object", "since", "table", "wanted"]

DEFAULT_PRINTER = Printer((NAME, Column("Created At", CREATED_DOC, type="date")), default_cells)

PRINTERS: Mapping[tuple[str, str], Printer] = MappingProxyType({
    ("", "pods"): Printer(POD_COLUMNS, pod_cells, pod_conditions),
    ("apps", "statefulsets"): Printer(STATEFULSET_COLUMNS, statefulset_cells),
    ("apps", "deployments"): Printer(DEPLOYMENT_COLUMNS, deployment_cells),
    ("batch", "jobs"): Printer(JOB_COLUMNS, job_cells),
    ("autoscaling", "horizontalpodautoscalers"): Printer(HPA_COLUMNS, hpa_cells),
    ("", "persistentvolumeclaims"): Printer(PVC_COLUMNS, pvc_cells),
    ("", "configmaps"): Printer(CONFIGMAP_COLUMNS, configmap_cells),
    ("", "namespaces"): Printer(NAMESPACE_COLUMNS, namespace_cells),
    ("", "endpoints"): Printer(ENDPOINTS_COLUMNS, endpoints_cells),
    ("", "services"): Printer(SERVICE_COLUMNS, service_cells),
    ("networking.k8s.io", "networkpolicies"): Printer(NETWORKPOLICY_COLUMNS, networkpolicy_cells),
    ("", "events"): Printer(EVENT_COLUMNS, event_cells),
})  # fmt: skip


def printer_for(rt: ResourceType) -> Printer:
    return PRINTERS.get((rt.group, rt.plural), DEFAULT_PRINTER)


# ---------------------------------------------------------------------- the Table


def wanted(accept: str) -> bool:
    """Whether an Accept header asks for a meta.k8s.io/v1 Table before a plain object.

    The media types are taken in order, as kube-apiserver negotiates kubectl's header: a v1
    Table wins if it comes before plain JSON. What the emulator cannot answer honestly is
    passed over: a Table in protobuf or YAML (it speaks JSON only), and a v1beta1 Table (same
    shape, older apiVersion), whose fallback is the plain object. The official Python
    client's `application/json` gets the plain object, as before.
    """
    for clause in accept.split(","):
        media, *raw = (part.strip() for part in clause.split(";"))
        params = dict(p.split("=", 1) for p in raw if "=" in p)
        as_ = params.get("as")
        v1_table = params.get("g") == TABLE_GROUP and params.get("v") == "v1"
        if as_ == "Table" and v1_table and media in ("application/json", "*/*"):
            return True
        if as_ is None and media in ("application/json", "application/*", "*/*"):
            return False
    return False


def include_object(params: Mapping[str, str]) -> str:
    """The row's object kube-apiserver embeds: Metadata (the default), Object or None."""
    value = params.get("includeObject") or ""
    if value not in INCLUDE_OBJECT:
        raise TableError(f'unrecognized includeObject value: "{value}"')
    return INCLUDE_OBJECT[value]


def embedded(obj: Obj, include: str) -> JSONDict | None:
    """What a row carries: the PartialObjectMetadata kubectl reads labels from (for
    --show-labels), the whole object, or nothing."""
    if include == "None":
        return None
    if include == "Object":
        return copy.deepcopy(dict(obj))
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
            "metadata": copy.deepcopy(dict(_meta(obj)))}  # fmt: skip


def row(printer: Printer, obj: Obj, include: str, now: datetime) -> JSONDict:
    found: JSONDict = {"cells": printer.cells(obj, now), "object": embedded(obj, include)}
    if conditions := printer.conditions(obj):
        found["conditions"] = conditions
    return found


def table(
    rt: ResourceType,
    objects: Sequence[Obj],
    params: Mapping[str, str],
    *,
    resource_version: str,
    now: datetime,
    headers: bool = True,
) -> JSONDict:
    """The Table kube-apiserver answers for these objects (a list, one object, or one watch
    event). `headers=False` leaves out the column definitions, as a watch does after its first
    event; kubectl keeps the ones it has. Raises TableError for a bad includeObject."""
    include, printer = include_object(params), printer_for(rt)
    columns = [c.definition() for c in printer.columns] if headers else None
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": columns,
        "rows": [row(printer, obj, include, now) for obj in objects],
    }
