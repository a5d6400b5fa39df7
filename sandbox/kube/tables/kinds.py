"""The rows of every other kind the sandbox serves: workloads (Jobs too), autoscalers, claims,
config maps, namespaces, endpoints, services, network policies and events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sandbox.kube.tables.format import (
    ACCESS_MODES,
    AGE,
    CONTAINERS,
    HPA_METRICS_SHOWN,
    IMAGES,
    MORE_AFTER,
    NAME,
    NAME_DOC,
    READY_REPLICAS_DOC,
    STORAGE_CLASS_ANNOTATION,
    Column,
    Obj,
    _meta,
    _name,
    _replicas,
    _template_spec,
    age,
    container_cells,
    format_labels,
    format_selector,
    human_duration,
    parse_time,
    selector_string,
    since,
)


def statefulset_cells(sts: Obj, now: datetime) -> list[Any]:
    ready = int((sts.get("status") or {}).get("readyReplicas") or 0)
    return [_name(sts), f"{ready}/{_replicas(sts)}", age(sts, now),
            *container_cells(_template_spec(sts))]  # fmt: skip


def deployment_cells(deploy: Obj, now: datetime) -> list[Any]:
    status = deploy.get("status") or {}
    selector = selector_string((deploy.get("spec") or {}).get("selector"))
    return [
        _name(deploy), f"{int(status.get('readyReplicas') or 0)}/{_replicas(deploy)}",
        int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
        age(deploy, now), *container_cells(_template_spec(deploy)),
        "<invalid>" if selector is None else selector,
    ]  # fmt: skip


def _job_condition(job: Obj, kind: str) -> bool:
    """hasJobCondition: the first condition of that type decides."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def job_status(job: Obj) -> str:
    """printJob's Status (1.33): the first of these that holds, else Running."""
    if _job_condition(job, "Complete"):
        return "Complete"
    if _job_condition(job, "Failed"):
        return "Failed"
    if _meta(job).get("deletionTimestamp"):
        return "Terminating"
    if _job_condition(job, "Suspended"):
        return "Suspended"
    if _job_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions(job: Obj) -> str:
    """`1/1`; with no completions set, `0/1`, or `0/1 of 3` for a parallel work queue."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{int(spec['completions'])}"
    parallelism = int(spec.get("parallelism") or 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(job: Obj, now: datetime) -> str:
    """From startTime to completionTime, or to now while it runs; empty before it starts."""
    status = job.get("status") or {}
    started = parse_time(status.get("startTime"))
    if started is None:
        return ""
    ended = parse_time(status.get("completionTime")) or now
    return human_duration((ended - started).total_seconds())


def job_cells(job: Obj, now: datetime) -> list[Any]:
    selector = format_selector((job.get("spec") or {}).get("selector"))
    return [_name(job), job_status(job), job_completions(job), job_duration(job, now),
            age(job, now), *container_cells(_template_spec(job)), selector]  # fmt: skip


def hpa_cells(hpa: Obj, now: datetime) -> list[Any]:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    target = spec.get("scaleTargetRef") or {}
    minimum = spec.get("minReplicas")
    return [
        _name(hpa), f"{target.get('kind', '')}/{target.get('name', '')}",
        hpa_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
        "<unset>" if minimum is None else str(minimum), int(spec.get("maxReplicas") or 0),
        int(status.get("currentReplicas") or 0), age(hpa, now),
    ]  # fmt: skip


METRIC_SOURCES = MappingProxyType({"External": "external", "Pods": "pods", "Object": "object",
                                   "Resource": "resource",
                                   "ContainerResource": "containerResource"})  # fmt: skip


def _quantity(values: Obj | None, key: str) -> str:
    """A metric quantity as stored, or <unknown> when the autoscaler has not reported it."""
    value = (values or {}).get(key)
    return "<unknown>" if value is None else str(value)


def _metric(spec: Obj, status: Obj | None) -> str:
    """One HPA metric as formatHPAMetrics writes it: `current/target`, `(avg)` for an
    average value, `cpu: 12%/80%` for a resource's utilization."""
    key = METRIC_SOURCES.get(str(spec.get("type")))
    if key is None:
        return "<unknown type>"
    source = spec.get(key) or {}
    target = source.get("target") or {}
    current = ((status or {}).get(key) or {}).get("current") if status else None
    if key == "pods":
        return f"{_quantity(current, 'averageValue')}/{target.get('averageValue')}"
    if key in ("external", "object"):
        if target.get("averageValue") is not None:
            return f"{_quantity(current, 'averageValue')}/{target['averageValue']} (avg)"
        return f"{_quantity(current, 'value')}/{target.get('value')}"
    name = source.get("name")
    if target.get("averageValue") is not None:
        return f"{name}: {_quantity(current, 'averageValue')}/{target['averageValue']}"
    used = (current or {}).get("averageUtilization")
    wanted = target.get("averageUtilization")
    shown_used = "<unknown>" if used is None else f"{used}%"
    return f"{name}: {shown_used}/{'<auto>' if wanted is None else f'{wanted}%'}"


def hpa_metrics(specs: Sequence[Obj], statuses: Sequence[Obj]) -> str:
    """The Targets cell: the first two metrics, then `+ N more...`."""
    if not specs:
        return "<none>"
    shown = [_metric(s, statuses[i] if i < len(statuses) else None) for i, s in enumerate(specs)]
    text = ", ".join(shown[:HPA_METRICS_SHOWN])
    extra = len(shown) - HPA_METRICS_SHOWN
    return f"{text} + {extra} more..." if extra > 0 else text


# ---------------------------------------------------------------------- storage, config


def access_modes(modes: Sequence[str]) -> str:
    """GetAccessModesAsString: RWO, ROX, RWX, RWOP in that order, each once."""
    return ",".join(short for mode, short in ACCESS_MODES if mode in modes)


def pvc_cells(pvc: Obj, now: datetime) -> list[Any]:
    spec, status, meta = pvc.get("spec") or {}, pvc.get("status") or {}, _meta(pvc)
    phase = "Terminating" if meta.get("deletionTimestamp") else str(status.get("phase") or "")
    volume = str(spec.get("volumeName") or "")
    capacity = str((status.get("capacity") or {}).get("storage", "0")) if volume else ""
    modes = access_modes(status.get("accessModes") or []) if volume else ""
    annotations = meta.get("annotations") or {}
    storage_class = annotations.get(STORAGE_CLASS_ANNOTATION, spec.get("storageClassName") or "")
    return [
        _name(pvc), phase, volume, capacity, modes, storage_class,
        spec.get("volumeAttributesClassName") or "<unset>", age(pvc, now),
        spec.get("volumeMode") or "<unset>",
    ]  # fmt: skip


def configmap_cells(cm: Obj, now: datetime) -> list[Any]:
    keys = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_name(cm), keys, age(cm, now)]


def namespace_cells(ns: Obj, now: datetime) -> list[Any]:
    return [_name(ns), str((ns.get("status") or {}).get("phase") or ""), age(ns, now)]


# ---------------------------------------------------------------------- network


def _host_port(ip: str, port: Any) -> str:
    """net.JoinHostPort: an IPv6 address goes in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: every ready address with each of its subset's ports, the first three
    shown, then `+ N more...`; <none> for no subsets at all."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    found: list[str] = []
    for subset in subsets:
        ips = [str(a.get("ip") or "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        found += ips if not ports else [_host_port(ip, p.get("port")) for p in ports for ip in ips]
    text = ",".join(found[:MORE_AFTER])
    return f"{text} + {len(found) - MORE_AFTER} more..." if len(found) > MORE_AFTER else text


def endpoints_cells(endpoints: Obj, now: datetime) -> list[Any]:
    return [_name(endpoints), format_endpoints(endpoints), age(endpoints, now)]


def _port(port: Obj) -> str:
    """makePortString's piece: 6379/TCP, or 80:30080/TCP with a node port."""
    protocol = port.get("protocol") or "TCP"
    if port.get("nodePort"):
        return f"{port.get('port')}:{port['nodePort']}/{protocol}"
    return f"{port.get('port')}/{protocol}"


def _load_balancer(service: Obj) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return sorted({str(i.get("ip") or i.get("hostname")) for i in ingress
                   if i.get("ip") or i.get("hostname")})  # fmt: skip


def external_ip(service: Obj) -> str:
    """getServiceExternalIP, as the server prints it (wide: a load balancer is not clipped)."""
    spec = service.get("spec") or {}
    kind, external = spec.get("type") or "ClusterIP", list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        return ",".join(_load_balancer(service) + external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def service_cells(service: Obj, now: datetime) -> list[Any]:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    ports = ",".join(_port(p) for p in spec.get("ports") or [])
    return [
        _name(service), spec.get("type") or "ClusterIP", cluster_ips[0] or "<none>",
        external_ip(service), ports or "<none>", age(service, now),
        format_labels(spec.get("selector")),
    ]  # fmt: skip


def networkpolicy_cells(policy: Obj, now: datetime) -> list[Any]:
    selector = (policy.get("spec") or {}).get("podSelector")
    return [_name(policy), format_selector(selector), age(policy, now)]


# ---------------------------------------------------------------------- events


def _event_source(event: Obj) -> str:
    """formatEventSource: `component, host`, from reportingController/Instance when unset."""
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else str(component)


def event_cells(event: Obj, now: datetime) -> list[Any]:
    """printEvent: Last Seen falls back to First Seen, and that to eventTime; a series
    carries its own last time and count; a singleton without a count counts once."""
    first = since(event.get("firstTimestamp") or event.get("eventTime"), now)
    last = since(event["lastTimestamp"], now) if event.get("lastTimestamp") else first
    count, series = int(event.get("count") or 0), event.get("series")
    if series:
        last, count = since(series.get("lastObservedTime"), now), int(series.get("count") or 0)
    elif count == 0:
        count = 1
    involved = event.get("involvedObject") or {}
    kind, name = str(involved.get("kind") or "").lower(), involved.get("name")
    return [
        last, event.get("type") or "", event.get("reason") or "",
        f"{kind}/{name}" if name else kind, involved.get("fieldPath") or "",
        _event_source(event), str(event.get("message") or "").strip(), first, count, _name(event),
    ]  # fmt: skip


def default_cells(obj: Obj, now: datetime) -> list[Any]:
    """kube-apiserver's table for a type without a printer: the name and the creation time."""
    created = parse_time(_meta(obj).get("creationTimestamp"))
    return [_name(obj), (created or datetime(1, 1, 1, tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")]


# ---------------------------------------------------------------------- the printers


STATEFULSET_COLUMNS = (NAME, Column("Ready", READY_REPLICAS_DOC), AGE, CONTAINERS, IMAGES)
DEPLOYMENT_COLUMNS = (
    NAME,
    Column("Ready", READY_REPLICAS_DOC),
    Column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that "
           "have the desired template spec."),
    Column("Available", "Total number of available pods (ready for at least minReadySeconds) "
           "targeted by this deployment."),
    AGE, CONTAINERS, IMAGES,
    Column("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected "
           "by this will be the ones affected by this deployment.", priority=1),
)  # fmt: skip
JOB_COLUMNS = (
    NAME,
    Column("Status", "Status of the job."),
    Column("Completions", "The number of pods which reached phase Succeeded. The value "
           "increases monotonically for a given spec. However, it may decrease in reaction to "
           "scale down of elastic indexed jobs."),
    Column("Duration", "Time required to complete the job."),
    AGE, CONTAINERS, IMAGES,
    Column("Selector", "A label query over pods that should match the pod count. Normally, the "
           "system sets this field for you. More info: "
           "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
           "#label-selectors", priority=1),
)  # fmt: skip
HPA_COLUMNS = (
    NAME,
    Column("Reference", "scaleTargetRef points to the target resource to scale, and is used "
           "to the pods for which metrics should be collected, as well as to actually change "
           "the replica count."),
    Column("Targets", "metrics contains the specifications for which to use to calculate the "
           "desired replica count (the maximum replica count across all metrics will be "
           "used).  The desired replica count is calculated multiplying the ratio between the "
           "target value and the current value by the current number of pods.  Ergo, metrics "
           "used must decrease as the pod count is increased, and vice-versa.  See the "
           "individual metric source types for more information about how each type of "
           "metric must respond."),
    Column("MinPods", "minReplicas is the lower limit for the number of replicas to which the "
           "autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 "
           "if the alpha feature gate HPAScaleToZero is enabled and at least one Object or "
           "External metric is configured.  Scaling is active as long as at least one metric "
           "value is available."),
    Column("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the "
           "autoscaler can scale up. It cannot be less that minReplicas."),
    Column("Replicas", "currentReplicas is current number of replicas of pods managed by this "
           "autoscaler, as last seen by the autoscaler."),
    AGE,
)  # fmt: skip
PVC_COLUMNS = (
    NAME,
    Column("Status", "phase represents the current phase of PersistentVolumeClaim."),
    Column("Volume", "volumeName is the binding reference to the PersistentVolume backing this "
           "claim."),
    Column("Capacity", "capacity represents the actual resources of the underlying volume."),
    Column("Access Modes", "accessModes contains the actual access modes the volume backing "
           "the PVC has. More info: "
           "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
    Column("StorageClass", "StorageClass of the pvc"),
    Column("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
    AGE,
    Column("VolumeMode", "volumeMode defines what type of volume is required by the claim. "
           "Value of Filesystem is implied when not included in claim spec.", priority=1),
)  # fmt: skip
CONFIGMAP_COLUMNS = (
    NAME,
    Column("Data", "Data contains the configuration data. Each key must consist of "
           "alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences "
           "must use the BinaryData field. The keys stored in Data must not overlap with the "
           "keys in the BinaryData field, this is enforced during validation process."),
    AGE,
)  # fmt: skip
NAMESPACE_COLUMNS = (NAME, Column("Status", "The status of the namespace"), AGE)
ENDPOINTS_COLUMNS = (
    NAME,
    Column("Endpoints", "The set of all endpoints is the union of all subsets. Addresses are "
           "placed into subsets according to the IPs they share. A single address with "
           "multiple ports, some of which are ready and some of which are not (because they "
           "come from different containers) will result in the address being displayed in "
           "different subsets for the different ports. No address will appear in both "
           "Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports "
           "that comprise a service."),
    AGE,
)  # fmt: skip
SERVICE_COLUMNS = (
    NAME,
    Column(
        "Type",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
        'ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a '
        "cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by "
        "the selector or if that is not specified, by manual construction of an Endpoints object "
        'or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated and the '
        'endpoints are published as a set of endpoints rather than a virtual IP. "NodePort" '
        "builds on ClusterIP and allocates a port on every node which routes to the same "
        'endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an external '
        "load-balancer (if supported in the current cloud) which routes to the same endpoints as "
        'the clusterIP. "ExternalName" aliases this service to the specified externalName. '
        "Several other fields do not apply to ExternalName services. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
    ),
    Column(
        "Cluster-IP",
        "clusterIP is the IP address of the service and is usually assigned randomly. If an "
        "address is specified manually, is in-range (as per system configuration), and is not in "
        "use, it will be allocated to the service; otherwise creation of the service will fail. "
        "This field may not be changed through updates unless the type field is also being "
        "changed to ExternalName (which requires this field to be blank) or the type field is "
        "being changed from ExternalName (in which case this field may optionally be specified, "
        'as describe above).  Valid values are "None", empty string (""), or a valid IP '
        'address. Setting this to "None" makes a "headless service" (no virtual IP), which is '
        "useful when direct endpoint connections are preferred and proxying is not required.  "
        "Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified "
        "when creating a Service of type ExternalName, creation will fail. This field will be "
        "wiped when updating a Service to type ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    Column(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
        "traffic for this service.  These IPs are not managed by Kubernetes.  The user is "
        "responsible for ensuring that traffic arrives at a node with this IP.  A common example "
        "is external load-balancers that are not part of the Kubernetes system.",
    ),
    Column(
        "Port(s)",
        "The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    AGE,
    Column(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector. If "
        "empty or not present, the service is assumed to have an external process managing its "
        "endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, "
        "and LoadBalancer. Ignored if type is ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/",
        priority=1,
    ),
)
NETWORKPOLICY_COLUMNS = (
    NAME,
    Column(
        "Pod-Selector",
        "Selects the pods to which this NetworkPolicy object applies.  The array of ingress rules "
        "is applied to any pods selected by this field. Multiple network policies can select the "
        "same set of pods.  In this case, the ingress rules for each are combined additively. "
        "This field is NOT optional and follows standard label selector semantics. An empty "
        "podSelector matches all pods in this namespace.",
    ),
    AGE,
)
EVENT_COLUMNS = (
    Column("Last Seen", "The time at which the most recent occurrence of this event was "
           "recorded."),
    Column("Type", "Type of this event (Normal, Warning), new types could be added in the "
           "future"),
    Column("Reason", "This should be a short, machine understandable string that gives the "
           "reason for the transition into the object's current status."),
    Column("Object", "The object that this event is about."),
    Column(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this string should "
        "contain a valid JSON/Go field access statement, such as "
        "desiredState.manifest.containers[2]. For example, if the object reference is to a "
        "container within a pod, this would take on a value like: \"spec.containers{name}\" "
        "(where \"name\" refers to the name of the container that triggered the event) or if no "
        "container name is specified \"spec.containers[2]\" (container with index 2 in this pod). "
        "This syntax is chosen only to have some well-defined way of referencing a part of an "
        "object.",
        priority=1,
    ),
    Column("Source", "The component reporting this event. Should be a short machine "
           "understandable string.", priority=1),
    Column("Message", "A human-readable description of the status of this operation."),
    Column("First Seen", "The time at which the event was first recorded. (Time of server "
           "receipt is in TypeMeta.)", priority=1),
    Column("Count", "The number of times this event has occurred.", priority=1),
    Column("Name", NAME_DOC, format="name", priority=1),
)  # fmt: skip
