"""The runbook's own kubectl commands against the sandbox, with a real kubectl 1.33 (put in the
virtualenv by scripts/ensure-kubectl.py): kubectl is strict about discovery, TLS and bearer
tokens, watches, strategic-merge patches, subresources and status codes, so it is the check,
independent of this project, that the emulator answers as a Kubernetes API server does.

`kubectl get` prints what the server's Table says (sandbox/kube/tables/): the tests below
read kubectl's own output (READY, STATUS, RESTARTS, -o wide, -w, --show-labels) against the
objects' JSON, and check that -o name/json/yaml and the official client still get the plain
objects. The commands that are not served yet (exec, the API pods' logs) are the open part of
the sandbox-speaks-kubectl work."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from sandbox import processes
from sandbox.cluster import SandboxCluster
from tests.sandbox_checks import ROLE

KUBECTL = processes.kubectl()
NS = "treebeard-production"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path_factory.mktemp("kubectl"), role_file=ROLE) as running:
        yield running


def kubectl_env(cluster: SandboxCluster, kubeconfig: Path | None = None) -> dict[str, str]:
    return {"KUBECONFIG": str(kubeconfig or cluster.kubeconfig), "HOME": str(cluster.root)}


def kubectl(
    cluster: SandboxCluster, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = kubectl_env(cluster, kubeconfig)
    return subprocess.run(
        [str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def ok(cluster: SandboxCluster, *args: str, kubeconfig: Path | None = None) -> str:
    run = kubectl(cluster, *args, kubeconfig=kubeconfig)
    assert run.returncode == 0, f"kubectl {' '.join(args)}: {run.stderr}"
    assert "error" not in run.stderr.lower(), run.stderr
    return run.stdout


def test_it_is_a_real_kubectl_1_33_and_a_current_server() -> None:
    version = subprocess.run(
        [str(KUBECTL), "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    assert json.loads(version.stdout)["clientVersion"]["minor"] == "33"


def test_discovery_finds_every_type_by_name_and_short_name(cluster: SandboxCluster) -> None:
    server = json.loads(ok(cluster, "version", "-o", "json"))["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "33")
    resources = ok(cluster, "api-resources", "-o", "name")
    for name in ("pods", "statefulsets.apps", "deployments.apps", "persistentvolumeclaims"):
        assert name in resources.split(), resources
    listed = ok(cluster, "get", "po,sts,deploy,pvc,ep,svc", "-n", NS, "-o", "name")
    assert set(listed.split()) >= {
        "pod/redis-0",
        "statefulset.apps/redis",
        "deployment.apps/treebeard-api",
        "persistentvolumeclaim/data-redis-0",
        "endpoints/redis",
        "service/redis",
    }


def test_the_first_commands_of_the_runbook(cluster: SandboxCluster) -> None:
    assert "redis-0" in ok(cluster, "get", "pods", "-n", NS)
    assert "redis" in ok(cluster, "get", "endpoints", "redis", "-n", NS)
    assert "data-redis-0" in ok(cluster, "get", "pvc", "-n", NS)
    described = ok(cluster, "describe", "pod", "redis-0", "-n", NS)
    assert "Controlled By:  StatefulSet/redis" in described
    assert "ClaimName:   data-redis-0" in described
    assert "Events:" in ok(cluster, "describe", "statefulset", "redis", "-n", NS)
    missing = kubectl(cluster, "get", "pod", "redis-9", "-n", NS)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "redis-9" not found'


def test_rollout_restart_really_restarts_redis_and_wait_sees_it_ready(
    cluster: SandboxCluster,
) -> None:
    before = cluster.restarts()
    assert "restarted" in ok(cluster, "rollout", "restart", "statefulset/redis", "-n", NS)
    status = ok(cluster, "rollout", "status", "statefulset/redis", "-n", NS, "--timeout=60s")
    assert "rolling update complete" in status
    ready = ok(cluster, "wait", "--for=condition=ready", "pod/redis-0", "-n", NS, "--timeout=60s")
    assert "condition met" in ready
    assert cluster.restarts() == before + 1
    assert cluster.redis().ping()


def test_fallback_commands_change_only_what_they_name(cluster: SandboxCluster) -> None:
    def api() -> dict[str, object]:
        found: dict[str, object] = json.loads(
            ok(cluster, "get", "deployment", "treebeard-api", "-n", NS, "-o", "json")
        )
        return found

    before = api()
    ok(cluster, "set", "env", "deployment/treebeard-api", "CACHE_ENABLED=false", "-n", NS)
    ok(cluster, "scale", "deployment/treebeard-api", "--replicas=8", "-n", NS)
    after = api()
    status = ok(cluster, "rollout", "status", "deployment/treebeard-api", "-n", NS)
    assert "successfully rolled out" in status

    def containers(d: dict[str, object]) -> list[dict[str, object]]:
        return d["spec"]["template"]["spec"]["containers"]  # type: ignore[index, no-any-return]

    env = {e["name"]: e["value"] for e in containers(after)[0]["env"]}  # type: ignore[attr-defined]
    old_env = {e["name"]: e["value"] for e in containers(before)[0]["env"]}  # type: ignore[attr-defined]
    assert env == {**old_env, "CACHE_ENABLED": "false"}
    assert after["spec"]["replicas"] == 8  # type: ignore[index]
    kept = [{k: v for k, v in c.items() if k != "env"} for c in containers(after)]
    assert kept == [{k: v for k, v in c.items() if k != "env"} for c in containers(before)]


def test_a_force_delete_brings_a_new_pod(cluster: SandboxCluster) -> None:
    uid = ok(cluster, "get", "pod", "redis-0", "-n", NS, "-o", "jsonpath={.metadata.uid}")
    deleted = ok(cluster, "delete", "pod", "redis-0", "-n", NS, "--force", "--grace-period=0")
    assert 'pod "redis-0" force deleted' in deleted
    ok(cluster, "wait", "--for=create", "pod/redis-0", "-n", NS, "--timeout=60s")  # the controller
    ok(cluster, "wait", "--for=condition=ready", "pod/redis-0", "-n", NS, "--timeout=60s")
    new = ok(cluster, "get", "pod", "redis-0", "-n", NS, "-o", "jsonpath={.metadata.uid}")
    assert new != uid


def test_the_workers_kubeconfig_is_held_to_the_shipped_role(cluster: SandboxCluster) -> None:
    worker = cluster.runbook_kubeconfig
    assert "redis-0" in ok(cluster, "get", "pods", "-n", NS, kubeconfig=worker)
    refused = kubectl(cluster, "delete", "deployment", "treebeard-api", "-n", NS, kubeconfig=worker)
    assert refused.returncode == 1
    assert "Error from server (Forbidden)" in refused.stderr
    assert 'cannot delete resource "deployments"' in refused.stderr


def test_auth_can_i_answers_with_the_shipped_role(cluster: SandboxCluster) -> None:
    """kubectl posts the SelfSubjectAccessReview as protobuf (no JSON fallback)."""
    worker = cluster.runbook_kubeconfig
    can = kubectl(cluster, "auth", "can-i", "patch", "statefulsets/redis", "-n", NS,
                  kubeconfig=worker)  # fmt: skip
    cannot = kubectl(cluster, "auth", "can-i", "delete", "deployments", "-n", NS,
                     kubeconfig=worker)  # fmt: skip
    admin = kubectl(cluster, "auth", "can-i", "delete", "deployments", "-n", NS)
    assert (can.returncode, can.stdout.strip()) == (0, "yes"), can.stderr
    assert (cannot.returncode, cannot.stdout.strip()) == (1, "no"), cannot.stderr
    assert admin.stdout.strip() == "yes"


def test_logs_are_the_real_redis_servers(cluster: SandboxCluster) -> None:
    """`kubectl logs statefulset/redis --tail=100`: kubectl finds the pod through the
    StatefulSet, defaults to its `redis` container, and reads the redis-server's own log."""
    logs = kubectl(cluster, "logs", "-n", NS, "statefulset/redis", "--tail=100")
    assert logs.returncode == 0, logs.stderr
    assert "Ready to accept connections" in logs.stdout
    assert 'Defaulted container "redis" out of: redis, exporter' in logs.stderr
    last = ok(cluster, "logs", "-n", NS, "redis-0", "-c", "redis", "--tail=1")
    assert len(last.splitlines()) == 1
    assert ok(cluster, "logs", "-n", NS, "redis-0", "-c", "exporter") == ""


def test_the_network_policy_in_front_of_redis(cluster: SandboxCluster) -> None:
    assert "redis-from-api" in ok(cluster, "get", "networkpolicies", "-n", NS)
    described = ok(cluster, "describe", "netpol", "redis-from-api", "-n", NS)
    assert "PodSelector:     app=redis" in described
    assert "app=treebeard-api" in described and "6379/TCP" in described


# ---------------------------------------------------------------------- Table output


KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def printed(block: str) -> tuple[list[str], list[dict[str, str]]]:
    """kubectl's columns and rows, cut where each header starts (a cell may be empty)."""
    header, *lines = block.strip("\n").splitlines()
    found = list(re.finditer(r"\S+(?: \S+)*", header))
    bounds = [m.start() for m in found] + [None]
    names = [m.group() for m in found]
    rows = [{n: line[a:b].strip() for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)}
            for line in lines]  # fmt: skip
    return names, rows


def printed_blocks(text: str) -> dict[str, tuple[list[str], dict[str, dict[str, str]]]]:
    """`kubectl get a,b,c`: one block per type, keyed by its kind, rows keyed by name."""
    found = {}
    for block in text.strip().split("\n\n"):
        names, rows = printed(block)
        kind = rows[0]["NAME"].split("/")[0]
        found[kind] = (names, {r["NAME"].split("/", 1)[1]: r for r in rows})
    return found


def redis_settled(cluster: SandboxCluster) -> None:
    ok(cluster, "rollout", "status", "statefulset/redis", "-n", NS, "--timeout=60s")
    ok(cluster, "wait", "--for=condition=ready", "pod/redis-0", "-n", NS, "--timeout=60s")


def test_get_pods_prints_ready_status_and_restarts(cluster: SandboxCluster) -> None:
    redis_settled(cluster)
    redis = ok(cluster, "get", "pods", "-n", NS, "-l", "app=redis").splitlines()
    assert redis[0] == "NAME      READY   STATUS    RESTARTS   AGE"
    assert re.fullmatch(r"redis-0   2/2     Running   0          \d+[smhd]\S*", redis[1]), redis
    names, rows = printed(ok(cluster, "get", "pods", "-n", NS))
    assert names == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    pods = json.loads(ok(cluster, "get", "pods", "-n", NS, "-o", "json"))["items"]
    assert [r["NAME"] for r in rows] == [p["metadata"]["name"] for p in pods]
    for row, pod in zip(rows, pods, strict=True):
        statuses = pod["status"]["containerStatuses"]
        ready = sum(1 for c in statuses if c["ready"])
        assert row["READY"] == f"{ready}/{len(pod['spec']['containers'])}", row


def test_workloads_storage_and_network_print_their_kube_columns(cluster: SandboxCluster) -> None:
    redis_settled(cluster)
    blocks = printed_blocks(ok(cluster, "get", "sts,deploy,pvc,ep,svc,netpol", "-n", NS))
    assert {kind: names for kind, (names, _) in blocks.items()} == {
        "statefulset.apps": ["NAME", "READY", "AGE"],
        "deployment.apps": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "persistentvolumeclaim": ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES",
                                  "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"],
        "endpoints": ["NAME", "ENDPOINTS", "AGE"],
        "service": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "networkpolicy.networking.k8s.io": ["NAME", "POD-SELECTOR", "AGE"],
    }  # fmt: skip
    assert blocks["statefulset.apps"][1]["redis"]["READY"] == "1/1"
    assert re.fullmatch(r"\d+/\d+", blocks["deployment.apps"][1]["treebeard-api"]["READY"])
    pvc = blocks["persistentvolumeclaim"][1]["data-redis-0"]
    assert list(pvc.values())[1:7] == ["Bound", "pv-data-redis-0", "1Gi", "RWO", "standard",
                                       "<unset>"]  # fmt: skip
    ep = json.loads(ok(cluster, "get", "endpoints", "redis", "-n", NS, "-o", "json"))
    addresses = [f"{a['ip']}:{p['port']}" for s in ep["subsets"] for p in s["ports"]
                 for a in s.get("addresses", [])]  # fmt: skip
    assert blocks["endpoints"][1]["redis"]["ENDPOINTS"] == ",".join(addresses)
    svc = blocks["service"][1]["redis"]
    assert (svc["TYPE"], svc["EXTERNAL-IP"], svc["PORT(S)"]) == ("ClusterIP", "<none>", "6379/TCP")
    cluster_ip = ok(cluster, "get", "svc", "redis", "-n", NS, "-o", "jsonpath={.spec.clusterIP}")
    assert svc["CLUSTER-IP"] == (cluster_ip or "<none>")
    assert blocks["networkpolicy.networking.k8s.io"][1]["redis-from-api"]["POD-SELECTOR"] == (
        "app=redis"
    )


def test_wide_adds_the_pods_ip_and_node(cluster: SandboxCluster) -> None:
    redis_settled(cluster)
    names, rows = printed(ok(cluster, "get", "pods", "-n", NS, "-l", "app=redis", "-o", "wide"))
    assert names == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                     "NOMINATED NODE", "READINESS GATES"]  # fmt: skip
    pod = json.loads(ok(cluster, "get", "pod", "redis-0", "-n", NS, "-o", "json"))
    assert rows[0]["IP"] == pod["status"]["podIP"]
    assert rows[0]["NODE"] == pod["spec"].get("nodeName", "<none>")
    assert (rows[0]["NOMINATED NODE"], rows[0]["READINESS GATES"]) == ("<none>", "<none>")
    sts = printed(ok(cluster, "get", "sts", "redis", "-n", NS, "-o", "wide"))[1][0]
    assert (sts["CONTAINERS"], sts["IMAGES"]) == (
        "redis,exporter", "redis:7.0,oliver006/redis_exporter:v1.62.0")  # fmt: skip


def test_a_watch_prints_one_header_then_a_row_per_change(
    cluster: SandboxCluster, tmp_path: Path
) -> None:
    """kubectl lists (the header and a row), then watches: every change is one more row,
    from a one-row Table whose column definitions came with the first event only."""
    redis_settled(cluster)
    out = tmp_path / "watch.txt"
    args = ["get", "pods", "-n", NS, "-l", "app=redis", "-w", "--request-timeout=8s"]
    with out.open("w") as sink, subprocess.Popen(
        [str(KUBECTL), *args], env=kubectl_env(cluster), stdout=sink, stderr=subprocess.PIPE,
        text=True,
    ) as watching:  # fmt: skip
        deadline = time.monotonic() + 7
        change = 0
        while out.read_text().count("redis-0") < 3 and time.monotonic() < deadline:
            change += 1  # annotated until the watch is seen to be there
            ok(cluster, "annotate", "pod", "redis-0", "-n", NS, f"test.io/watched={change}",
               "--overwrite")  # fmt: skip
            time.sleep(0.3)
        _, errors = watching.communicate(timeout=30)
    assert watching.returncode == 0, errors
    assert "error" not in errors.lower(), errors
    header, *rows = out.read_text().splitlines()
    assert header == "NAME      READY   STATUS    RESTARTS   AGE"
    assert len(rows) >= 3, rows
    assert all(re.fullmatch(r"redis-0   2/2     Running   0          \S+", r) for r in rows), rows


def test_show_labels_reads_them_from_the_rows_metadata(cluster: SandboxCluster) -> None:
    names, rows = printed(ok(cluster, "get", "pods", "-n", NS, "-l", "app=redis", "--show-labels"))
    assert names == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    labels = rows[0]["LABELS"].split(",")
    assert {"app=redis", "statefulset.kubernetes.io/pod-name=redis-0"} <= set(labels), labels


def test_name_json_and_yaml_are_the_objects_themselves(cluster: SandboxCluster) -> None:
    assert ok(cluster, "get", "pods", "-n", NS, "-l", "app=redis", "-o", "name").split() == [
        "pod/redis-0"
    ]
    listed = json.loads(ok(cluster, "get", "pods", "-n", NS, "-l", "app=redis", "-o", "json"))
    assert listed["kind"] == "List"
    assert [(p["kind"], p["metadata"]["name"]) for p in listed["items"]] == [("Pod", "redis-0")]
    assert listed["items"][0]["status"]["phase"] == "Running"
    one = yaml.safe_load(ok(cluster, "get", "statefulset", "redis", "-n", NS, "-o", "yaml"))
    assert (one["apiVersion"], one["kind"], one["metadata"]["name"]) == (
        "apps/v1", "StatefulSet", "redis")  # fmt: skip
    assert one["spec"]["template"]["spec"]["containers"][0]["image"] == "redis:7.0"


def raw_get(api: Any, path: str, accept: str, **query: str) -> Any:
    """A GET as the official client sends it, with the Accept header given."""
    method, url, headers, _, _ = api.param_serialize(
        "GET", path, query_params=list(query.items()), header_params={"Accept": accept},
        auth_settings=["BearerToken"],
    )  # fmt: skip
    return api.call_api(method, url, headers)


def test_the_official_client_gets_plain_objects_and_tables_only_when_asked(
    cluster: SandboxCluster,
) -> None:
    api = cluster.api_client()
    core: Any = client.CoreV1Api(api)  # its models make every field Optional
    pods = core.list_namespaced_pod(NS, label_selector="app=redis")
    assert [p.metadata.name for p in pods.items] == ["redis-0"]
    path = f"/api/v1/namespaces/{NS}/pods"
    plain = json.loads(raw_get(api, path, "application/json").read())
    assert plain["kind"] == "PodList"
    table = json.loads(raw_get(api, path, KUBECTL_ACCEPT, includeObject="None").read())
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert {r["cells"][0] for r in table["rows"]} == {i["metadata"]["name"] for i in plain["items"]}
    assert all(r["object"] is None for r in table["rows"])
    one = json.loads(raw_get(api, f"{path}/redis-0", KUBECTL_ACCEPT, includeObject="Object").read())
    assert one["rows"][0]["object"]["kind"] == "Pod"
    beta_only = "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert json.loads(raw_get(api, path, beta_only).read())["kind"] == "PodList"
    refused = raw_get(api, path, KUBECTL_ACCEPT, includeObject="All")
    assert refused.status == 400
    assert json.loads(refused.read())["message"] == 'unrecognized includeObject value: "All"'
