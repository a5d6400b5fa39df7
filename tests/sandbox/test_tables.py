"""The Tables kube-apiserver prints for kubectl (sandbox/kube/tables/), from objects as the
sandbox makes them: the manifests, and pods whose status is the controller's own pod_status
for a real redis-server (running), a stopped one, a crash loop or an unbound volume.

The expected cells are what kube-apiserver 1.33 prints for the same objects; Age and
HumanDuration follow apimachinery's own test table."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox import manifests
from sandbox.controller import PodRuntime, pod_status
from sandbox.kube import tables
from sandbox.kube.api import BUILTIN_TYPES
from sandbox.kube.types import ResourceType
from sandbox.processes import RedisProcess
from tests.conftest import RedisFactory

JSONDict = dict[str, Any]
TYPES = {rt.plural: rt for rt in BUILTIN_TYPES}
NAMES = manifests.SandboxNames()
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def stored(obj: JSONDict, age: timedelta = timedelta(minutes=14)) -> JSONDict:
    """The object as the API server stores it: apiVersion, kind, uid, creation time."""
    found = copy.deepcopy(obj)
    meta = found.setdefault("metadata", {})
    meta.update(uid="0f1e2d3c", resourceVersion="42", creationTimestamp=iso(NOW - age))
    return found


def cells(plural: str, obj: JSONDict, **params: str) -> list[Any]:
    table = tables.table(TYPES[plural], [obj], params, resource_version="42", now=NOW)
    found: list[Any] = table["rows"][0]["cells"]
    assert len(found) == len(table["columnDefinitions"])
    return found


# ---------------------------------------------------------------------- pods


def redis_pod(runtime: PodRuntime, scheduled: bool = True, alive: bool = False) -> JSONDict:
    """redis-0 as the StatefulSet controller creates it, with the kubelet's status."""
    sts = manifests.redis_statefulset(NAMES)
    template = sts["spec"]["template"]
    pod = stored({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "redis-0", "namespace": NAMES.namespace,
                     "labels": {**template["metadata"]["labels"],
                                "statefulset.kubernetes.io/pod-name": "redis-0"}},
        "spec": copy.deepcopy(template["spec"]),
    }, age=timedelta(minutes=3, seconds=5))  # fmt: skip
    pod["status"] = pod_status(pod, runtime, scheduled=scheduled, alive=alive)
    return pod


@pytest.fixture
def runtime(tmp_path: Path) -> PodRuntime:
    """A pod's runtime whose redis-server was never started."""
    return PodRuntime(name="redis-0", process=RedisProcess(tmp_path / "redis-0"))


@pytest.fixture
def running(redis_server: RedisFactory) -> PodRuntime:
    """A pod's runtime with a real redis-server running, as the kubelet side starts it."""
    return PodRuntime(name="redis-0", process=redis_server(), started_at=iso(NOW), starts=1)


def test_a_running_redis_pod_reads_as_kubectl_prints_it(running: PodRuntime) -> None:
    pod = redis_pod(running, alive=True)
    assert cells("pods", pod) == [
        "redis-0", "2/2", "Running", "0", "3m5s", "127.0.0.1", "<none>", "<none>", "<none>",
    ]  # fmt: skip


def test_restarts_say_when_the_last_container_finished(running: PodRuntime) -> None:
    running.restart_count = 3
    finished = iso(NOW - timedelta(seconds=12))
    running.last_state = {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                         "finishedAt": finished}}  # fmt: skip
    assert cells("pods", redis_pod(running, alive=True))[1:4] == ["2/2", "Running", "3 (12s ago)"]


def test_a_crash_loop_names_the_waiting_reason(runtime: PodRuntime) -> None:
    runtime.crashing, runtime.restart_count = True, 5
    finished = iso(NOW - timedelta(seconds=2))
    runtime.last_state = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}}
    assert cells("pods", redis_pod(runtime))[1:4] == ["1/2", "CrashLoopBackOff", "5 (2s ago)"]


def test_a_killed_redis_shows_its_terminated_reason(runtime: PodRuntime) -> None:
    runtime.terminated = {"exitCode": 137, "reason": "Error", "finishedAt": iso(NOW)}
    assert cells("pods", redis_pod(runtime))[1:4] == ["1/2", "Error", "0"]
    runtime.terminated = {"exitCode": 137, "finishedAt": iso(NOW)}
    assert cells("pods", redis_pod(runtime))[2] == "ExitCode:137"


def test_an_unbound_volume_leaves_the_pod_creating(runtime: PodRuntime) -> None:
    found = cells("pods", redis_pod(runtime, scheduled=False))
    assert found[1:4] == ["0/2", "ContainerCreating", "0"]
    assert found[5] == "<none>"  # no pod IP before it is scheduled


def test_a_pod_being_deleted_is_terminating(running: PodRuntime) -> None:
    pod = redis_pod(running, alive=True)
    pod["metadata"]["deletionTimestamp"] = iso(NOW)
    assert cells("pods", pod)[2] == "Terminating"
    pod["status"]["phase"] = "Succeeded"  # a finished pod keeps its phase
    table = tables.table(TYPES["pods"], [pod], {}, resource_version="1", now=NOW)
    assert table["rows"][0]["cells"][2] == "Succeeded"
    assert table["rows"][0]["conditions"] == [{"type": "Completed", "status": "True",
        "reason": "Succeeded", "message": "The pod has completed successfully."}]  # fmt: skip


def test_init_containers_and_sidecars(running: PodRuntime) -> None:
    pod = redis_pod(running, alive=True)
    sidecar_spec = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
    pod["spec"]["initContainers"] = [{"name": "sysctl", "image": "busybox"}, sidecar_spec]
    waiting = {"name": "sysctl", "restartCount": 2, "ready": False,
               "state": {"waiting": {"reason": "PodInitializing"}}}  # fmt: skip
    pod["status"]["initContainerStatuses"] = [waiting]
    pod["status"]["conditions"] = [{"type": "Initialized", "status": "False"}]
    assert cells("pods", pod)[1:4] == ["0/3", "Init:0/2", "2"]
    done = {**waiting, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    sidecar = {"name": "proxy", "restartCount": 1, "ready": True, "started": True,
               "state": {"running": {"startedAt": iso(NOW)}}}  # fmt: skip
    pod["status"]["initContainerStatuses"] = [done, sidecar]
    pod["status"]["conditions"] = [{"type": "Initialized", "status": "True"}]
    assert cells("pods", pod)[1:4] == ["3/3", "Running", "1"]  # the sidecar's restarts only


def test_readiness_gates_and_nodes_in_the_wide_columns(running: PodRuntime) -> None:
    pod = redis_pod(running, alive=True)
    pod["spec"]["nodeName"] = "sandbox"
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}, {"conditionType": "x"}]
    pod["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    assert cells("pods", pod)[5:] == ["127.0.0.1", "sandbox", "<none>", "1/2"]


# ---------------------------------------------------------------------- the other types


def test_the_redis_statefulset_and_the_api_deployment() -> None:
    sts = stored(manifests.redis_statefulset(NAMES))
    sts["status"] = {"replicas": 1, "readyReplicas": 1}
    assert cells("statefulsets", sts) == [
        "redis", "1/1", "14m", "redis,exporter", "redis:7.0,oliver006/redis_exporter:v1.62.0",
    ]  # fmt: skip
    deploy = stored(manifests.api_deployment(NAMES, replicas=3))
    deploy["status"] = {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                        "availableReplicas": 2}  # fmt: skip
    assert cells("deployments", deploy) == [
        "treebeard-api", "2/3", 3, 2, "14m", "api,envoy",
        "treebeard/api:1.4.2,envoyproxy/envoy:v1.30.1", "app=treebeard-api",
    ]  # fmt: skip


def test_the_volume_claim_service_and_network_policy() -> None:
    assert cells("persistentvolumeclaims", stored(manifests.redis_pvc(NAMES))) == [
        "data-redis-0", "Bound", "pv-data-redis-0", "1Gi", "RWO", "standard", "<unset>", "14m",
        "<unset>",
    ]  # fmt: skip
    assert cells("services", stored(manifests.redis_service(NAMES))) == [
        "redis", "ClusterIP", "<none>", "<none>", "6379/TCP", "14m", "app=redis",
    ]  # fmt: skip
    policy = stored(manifests.redis_network_policy(NAMES))
    assert cells("networkpolicies", policy) == ["redis-from-api", "app=redis", "14m"]
    assert cells("namespaces", stored(manifests.namespace(NAMES))) == [
        "treebeard-production", "Active", "14m",
    ]  # fmt: skip


def test_an_unbound_claim_shows_no_capacity_yet() -> None:
    pvc = stored(manifests.redis_pvc(NAMES))
    pvc["spec"].pop("volumeName")
    pvc["status"] = {"phase": "Pending"}
    assert cells("persistentvolumeclaims", pvc)[1:5] == ["Pending", "", "", ""]


def endpoints(ports: list[int], ready: int, not_ready: int = 0) -> JSONDict:
    """The redis Endpoints as the sandbox's endpoints controller writes them."""
    subsets = [{"addresses" if i < ready else "notReadyAddresses": [{"ip": "127.0.0.1"}],
                "ports": [{"name": "redis", "port": port, "protocol": "TCP"}]}
               for i, port in enumerate(ports[: ready + not_ready])]  # fmt: skip
    return stored({"metadata": {"name": "redis", "namespace": NAMES.namespace},
                   "subsets": subsets})  # fmt: skip


def test_endpoints_list_ready_addresses_and_cut_after_three() -> None:
    assert cells("endpoints", endpoints([50325], ready=1))[1] == "127.0.0.1:50325"
    assert cells("endpoints", endpoints([1, 2], ready=2))[1] == "127.0.0.1:1,127.0.0.1:2"
    five = cells("endpoints", endpoints([1, 2, 3, 4, 5], ready=5))[1]
    assert five == "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 + 2 more..."
    assert cells("endpoints", endpoints([1], ready=0, not_ready=1))[1] == ""
    assert cells("endpoints", endpoints([], ready=0))[1] == "<none>"


def test_an_event_as_the_controller_records_it() -> None:
    event = stored({
        "metadata": {"name": "redis-0.17f3", "namespace": NAMES.namespace},
        "involvedObject": {"kind": "Pod", "name": "redis-0", "namespace": NAMES.namespace},
        "reason": "BackOff", "message": "Back-off restarting failed container redis\n",
        "type": "Warning", "count": 4, "firstTimestamp": iso(NOW - timedelta(hours=3, minutes=5)),
        "lastTimestamp": iso(NOW - timedelta(seconds=30)), "source": {"component": "kubelet"},
    })  # fmt: skip
    assert cells("events", event) == [
        "30s", "Warning", "BackOff", "pod/redis-0", "", "kubelet",
        "Back-off restarting failed container redis", "3h5m", 4, "redis-0.17f3",
    ]  # fmt: skip


def test_a_configmap_counts_its_keys() -> None:
    cm = stored({"metadata": {"name": "redis-config"}, "data": {"redis.conf": "x", "a": "b"},
                 "binaryData": {"blob": "AA=="}})  # fmt: skip
    assert cells("configmaps", cm) == ["redis-config", 3, "14m"]


def resource_metric(name: str, **target: Any) -> JSONDict:
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def test_an_autoscaler_shows_its_targets() -> None:
    metrics = [
        resource_metric("cpu", type="Utilization", averageUtilization=80),
        {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"averageValue": "100"}}},
        resource_metric("memory", type="AverageValue", averageValue="256Mi"),
    ]
    cpu_now = {
        "type": "Resource",
        "resource": {"name": "cpu", "current": {"averageUtilization": 12}},
    }
    hpa = stored({
        "metadata": {"name": "treebeard-api"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "treebeard-api"},
                 "maxReplicas": 10, "metrics": metrics},
        "status": {"currentReplicas": 3, "currentMetrics": [cpu_now]},
    })  # fmt: skip
    assert cells("horizontalpodautoscalers", hpa) == [
        "treebeard-api", "Deployment/treebeard-api",
        "cpu: 12%/80%, <unknown>/100 + 1 more...", "<unset>", 10, 3, "14m",
    ]  # fmt: skip


def test_a_type_without_a_printer_gets_the_default_table() -> None:
    rt = ResourceType(group="example.com", version="v1", plural="widgets", kind="Widget")
    table = tables.table(
        rt, [stored({"metadata": {"name": "w"}})], {}, resource_version="7", now=NOW
    )
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Created At"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["w", "2026-03-04T04:52:07Z"]


# ---------------------------------------------------------------------- the Table itself


def test_the_table_is_kube_apiservers_shape(running: PodRuntime) -> None:
    pod = redis_pod(running, alive=True)
    table = tables.table(TYPES["pods"], [pod], {}, resource_version="42", now=NOW)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == {"resourceVersion": "42"}
    columns = table["columnDefinitions"]
    assert [(c["name"], c["priority"]) for c in columns if c["priority"]] == [
        ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]  # fmt: skip
    assert columns[0] == {"name": "Name", "type": "string", "format": "name",
                          "description": tables.NAME_DOC, "priority": 0}  # fmt: skip
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in columns)
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata",
                                          "apiVersion": "meta.k8s.io/v1",
                                          "metadata": pod["metadata"]}  # fmt: skip


def test_include_object_and_a_watch_events_headers(running: PodRuntime) -> None:
    pod, rt = redis_pod(running, alive=True), TYPES["pods"]
    full = tables.table(rt, [pod], {"includeObject": "Object"}, resource_version="1", now=NOW)
    assert full["rows"][0]["object"] == pod
    bare = tables.table(rt, [pod], {"includeObject": "None"}, resource_version="1", now=NOW)
    assert bare["rows"][0]["object"] is None
    later = tables.table(rt, [pod], {}, resource_version="1", now=NOW, headers=False)
    assert later["columnDefinitions"] is None and len(later["rows"]) == 1
    with pytest.raises(tables.TableError, match='unrecognized includeObject value: "All"'):
        tables.table(rt, [pod], {"includeObject": "All"}, resource_version="1", now=NOW)


def test_only_a_v1_table_offered_before_plain_json_is_wanted() -> None:
    assert tables.wanted(KUBECTL_ACCEPT)
    assert tables.wanted("application/json; as=Table; v=v1; g=meta.k8s.io")
    assert not tables.wanted("application/json")  # the official Python client
    assert not tables.wanted("")
    assert not tables.wanted("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
    assert not tables.wanted("application/json,application/json;as=Table;v=v1;g=meta.k8s.io")
    protobuf_first = "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
    assert tables.wanted(f"{protobuf_first},{KUBECTL_ACCEPT}")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-2, "<invalid>"), (-1.999, "0s"), (0, "0s"), (0.999, "0s"), (5, "5s"), (70, "70s"),
        (119.999, "119s"), (120, "2m"), (123, "2m3s"), (190, "3m10s"), (599.999, "9m59s"),
        (600, "10m"), (14 * 60 + 59, "14m"), (3 * 3600 - 0.001, "179m"), (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"), (8 * 3600 - 0.001, "7h59m"), (8 * 3600, "8h"),
        (8 * 3600 + 59 * 60, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (49 * 3600, "2d1h"),
        (8 * 86400 - 0.001, "7d23h"), (8 * 86400, "8d"), (367 * 86400, "367d"),
        (730 * 86400 - 0.001, "729d"), (730 * 86400, "2y"), (731 * 86400, "2y1d"),
        (8 * 365 * 86400 - 0.001, "7y364d"), (8 * 365 * 86400, "8y"), (9 * 365 * 86400, "9y"),
    ],
)  # fmt: skip
def test_human_duration_is_apimachinerys(seconds: float, shown: str) -> None:
    assert tables.human_duration(seconds) == shown


def test_age_of_an_unset_time_is_unknown() -> None:
    assert tables.since(None, NOW) == "<unknown>"
    assert tables.since("2026-03-04T05:06:02.123456Z", NOW) == "4s"  # a MicroTime
