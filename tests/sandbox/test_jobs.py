"""Kubernetes Jobs on the sandbox: created with the official client as the worker creates its
warm Job, run as real local processes (the application's warm script against the sandbox's
real Redis), and read back with the official client and a real kubectl 1.33 (get, describe,
logs, wait), the way they read a cluster's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import redis
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox import processes
from sandbox.cache_traffic import warm_catalog
from sandbox.cluster import SandboxCluster
from sandbox.controller import is_api_pod
from sandbox.job_pods import IMAGES
from sandbox.jobs import pod_manifest
from sandbox.kube.faults import Fault

KUBECTL = processes.kubectl()
NS = "treebeard-production"
IMAGE = "treebeard/api:1.4.2"
API_LABELS = {"app": "treebeard-api"}  # what the NetworkPolicy in front of Redis admits
REDIS_ENV = [{"name": "REDIS_URL", "value": "redis://redis:6379/0"}]
WARM = ["python", "scripts/warm_cache.py", "--critical-only"]
SLEEP = ["python", "-c", "import time; time.sleep(60)"]
JSONDict = dict[str, Any]
T = TypeVar("T")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path_factory.mktemp("jobs")) as running:
        yield running


def job(
    name: str,
    command: list[str],
    *,
    labels: dict[str, str] | None = None,
    env: list[JSONDict] | None = None,
    **spec: Any,
) -> JSONDict:
    """A Job as the worker makes it from its template (backoffLimit 0 unless given)."""
    container = {"name": "warm-cache", "image": IMAGE, "command": command,
                 "env": REDIS_ENV if env is None else env}  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "redis-runbook"}},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"labels": API_LABELS if labels is None else labels},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def until(found: Callable[[], T | None], timeout: float = 15.0, what: str = "it") -> T:
    deadline = time.monotonic() + timeout
    while (value := found()) is None or value is False:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s")
        time.sleep(0.05)
    return value


def create(cluster: SandboxCluster, manifest: JSONDict) -> None:
    with cluster.api_client() as api:
        client.BatchV1Api(api).create_namespaced_job(NS, cast(Any, manifest))


def read_job(cluster: SandboxCluster, name: str) -> JSONDict | None:
    """The Job as the official client reads it (camelCase, as on the wire); None once gone."""
    with cluster.api_client() as api:
        try:
            found = client.BatchV1Api(api).read_namespaced_job(name, NS)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        serialized: JSONDict = api.sanitize_for_serialization(found)
        return serialized


def finished(cluster: SandboxCluster, name: str, timeout: float = 15.0) -> JSONDict:
    """Poll as the worker does until a Complete or Failed condition is True."""

    def done() -> JSONDict | None:
        found = read_job(cluster, name) or {}
        conditions = (found.get("status") or {}).get("conditions") or []
        terminal = [c for c in conditions if c["type"] in ("Complete", "Failed")]
        return found if any(c["status"] == "True" for c in terminal) else None

    return until(done, timeout, f"end of job {name}")


def pods_of(cluster: SandboxCluster, name: str) -> list[JSONDict]:
    with cluster.api_client() as api:
        found = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"job-name={name}")
        pods: list[JSONDict] = api.sanitize_for_serialization(found)["items"]
        return pods


def events_of(cluster: SandboxCluster, kind: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the object's events, oldest first."""
    with cluster.api_client() as api:
        found = client.CoreV1Api(api).list_namespaced_event(
            NS, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
        )
        events: list[JSONDict] = api.sanitize_for_serialization(found)["items"]
    events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"], e["message"]) for e in events]


def kubectl(cluster: SandboxCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.root)}
    return subprocess.run([str(KUBECTL), *args, "-n", NS], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def ok(cluster: SandboxCluster, *args: str) -> str:
    run = kubectl(cluster, *args)
    assert run.returncode == 0, f"kubectl {' '.join(args)}: {run.stderr}"
    return run.stdout


def table(text: str) -> list[dict[str, str]]:
    """kubectl's rows, by column (no cell of these tables is empty but the last ones)."""
    header, *lines = text.strip("\n").splitlines()
    names = header.split()
    starts = [header.index(n) for n in names] + [None]
    return [{n: line[a:b].strip() for n, a, b in zip(names, starts, starts[1:], strict=False)}
            for line in lines]  # fmt: skip


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def running_pid(cluster: SandboxCluster, name: str) -> tuple[str, int]:
    """The Job's running pod and its process' PID, once it runs."""

    def found() -> tuple[str, int] | None:
        for pod in pods_of(cluster, name):
            pid = cluster.controller.jobs.pid(NS, pod["metadata"]["name"])
            if pid is not None and pod["status"].get("phase") == "Running":
                return pod["metadata"]["name"], pid
        return None

    return until(found, what=f"running pod of {name}")


# ---------------------------------------------------------------------- the warm Job


def test_a_warm_job_runs_the_apps_script_against_the_real_redis(cluster: SandboxCluster) -> None:
    conn = cluster.redis()
    conn.flushall()
    create(cluster, job("warm-cache-3f9a1c2b7d", WARM, activeDeadlineSeconds=600,
                        ttlSecondsAfterFinished=3600))  # fmt: skip
    done = finished(cluster, "warm-cache-3f9a1c2b7d")
    status = done["status"]
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "True", "CompletionsReached"),
        ("Complete", "True", "CompletionsReached"),
    ]
    assert status["succeeded"] == 1 and "active" not in status and "failed" not in status
    assert status["startTime"] <= status["completionTime"]
    assert done["spec"]["completions"] == 1 and done["spec"]["selector"]["matchLabels"] == {
        "batch.kubernetes.io/controller-uid": done["metadata"]["uid"]
    }

    assert set(conn.keys("catalog:item:*")) == {f"catalog:item:{i}" for i in range(50)}
    assert conn.get("catalog:item:49") == "item 49 from the database"
    assert 590 < conn.ttl("catalog:item:0") <= 600

    [pod] = pods_of(cluster, "warm-cache-3f9a1c2b7d")
    uid = done["metadata"]["uid"]
    assert pod["metadata"]["name"].startswith("warm-cache-3f9a1c2b7d-")
    assert len(pod["metadata"]["name"]) == len("warm-cache-3f9a1c2b7d-") + 5
    labels = pod["metadata"]["labels"]
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "warm-cache-3f9a1c2b7d"
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == uid
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Job", "warm-cache-3f9a1c2b7d", uid, True)  # fmt: skip
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["startedAt"] <= terminated["finishedAt"]
    assert not is_api_pod(pod)

    assert [e[1:] for e in events_of(cluster, "Job", "warm-cache-3f9a1c2b7d")] == [
        ("SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"),
        ("Completed", "Job completed"),
    ]


def test_kubectl_reads_the_warm_job(cluster: SandboxCluster) -> None:
    create(cluster, job("warm-kubectl", WARM))
    finished(cluster, "warm-kubectl")
    assert "jobs.batch" in ok(cluster, "api-resources", "-o", "name").split()
    [row] = table(ok(cluster, "get", "jobs", "warm-kubectl"))
    assert list(row) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert (row["STATUS"], row["COMPLETIONS"]) == ("Complete", "1/1")
    [wide] = table(ok(cluster, "get", "jobs", "warm-kubectl", "-o", "wide"))
    assert (wide["CONTAINERS"], wide["IMAGES"]) == ("warm-cache", IMAGE)
    assert wide["SELECTOR"].startswith("batch.kubernetes.io/controller-uid=")
    assert "job.batch/warm-kubectl" in ok(cluster, "get", "all", "-o", "name").split()

    logs = ok(cluster, "logs", "job/warm-kubectl")
    assert logs == "warm_cache: wrote 50 catalog items (critical, TTL 600s)\n"
    waited = kubectl(cluster, "wait", "--for=condition=complete", "job/warm-kubectl",
                     "--timeout=10s")  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
    described = ok(cluster, "describe", "job", "warm-kubectl")
    assert re.search(r"Pods Statuses: +0 Active \(0 Ready\) / 1 Succeeded / 0 Failed", described)
    assert "Job completed" in described and "Created pod: warm-kubectl-" in described
    pods = table(ok(cluster, "get", "pods", "-l", "job-name=warm-kubectl"))
    assert [(p["READY"], p["STATUS"]) for p in pods] == [("0/1", "Completed")]


def test_the_script_writes_what_warm_catalog_writes(cluster: SandboxCluster) -> None:
    """The application's script and the sandbox's warm_catalog (the reads the sandbox's traffic
    makes) agree on every key, value and TTL, critical items and all of them."""
    base = cluster.redis_url.rsplit("/", 1)[0]
    script = IMAGES / "treebeard-api" / "scripts" / "warm_cache.py"
    for flags in (["--critical-only"], []):
        ours = redis.Redis.from_url(f"{base}/1", decode_responses=True)
        theirs = redis.Redis.from_url(f"{base}/2", decode_responses=True)
        with ours, theirs:
            ours.flushdb()
            theirs.flushdb()
            written = warm_catalog(ours, critical_only=bool(flags))
            run = subprocess.run([sys.executable, str(script), *flags], capture_output=True,
                                 text=True, env={"REDIS_URL": f"{base}/2"}, timeout=30,
                                 check=False)  # fmt: skip
            assert run.returncode == 0, run.stderr
            assert f"wrote {written} catalog items" in run.stdout
            keys = sorted(ours.keys())
            assert sorted(theirs.keys()) == keys and len(keys) == written
            assert theirs.mget(keys) == ours.mget(keys)
            assert {abs(theirs.ttl(k) - ours.ttl(k)) <= 2 for k in keys} == {True}
    refused = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env={"REDIS_URL": f"redis://127.0.0.1:{processes.free_port()}/0"},
                             timeout=30, check=False)  # fmt: skip
    assert refused.returncode == 1 and refused.stdout == ""
    assert "Redis error: ConnectionError" in refused.stderr


# ---------------------------------------------------------------------- failures


def test_a_failing_job_fails_at_once_with_backoff_limit_0(cluster: SandboxCluster) -> None:
    create(cluster, job("exits-3", ["python", "-c", "import sys; sys.exit(3)"]))
    done = finished(cluster, "exits-3")
    status = done["status"]
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert status["failed"] == 1 and "succeeded" not in status and "completionTime" not in status
    [pod] = pods_of(cluster, "exits-3")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in (
        events_of(cluster, "Job", "exits-3")
    )
    [row] = table(ok(cluster, "get", "jobs", "exits-3"))
    assert (row["STATUS"], row["COMPLETIONS"]) == ("Failed", "0/1")
    ok(cluster, "wait", "--for=condition=failed", "job/exits-3", "--timeout=10s")


def test_backoff_limit_1_runs_a_second_pod(cluster: SandboxCluster) -> None:
    create(cluster, job("exits-3-twice", ["python", "-c", "import sys; sys.exit(3)"],
                        backoffLimit=1))  # fmt: skip
    done = finished(cluster, "exits-3-twice")
    assert done["status"]["failed"] == 2
    assert done["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    pods = pods_of(cluster, "exits-3-twice")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    creates = [e for e in events_of(cluster, "Job", "exits-3-twice") if e[1] == "SuccessfulCreate"]
    assert len(creates) == 2


def test_the_deadline_stops_the_process(cluster: SandboxCluster) -> None:
    create(cluster, job("sleeps-past-deadline", SLEEP, activeDeadlineSeconds=1))
    pod, pid = running_pid(cluster, "sleeps-past-deadline")
    done = finished(cluster, "sleeps-past-deadline")
    assert [(c["type"], c["reason"]) for c in done["status"]["conditions"]] == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]
    assert done["status"]["failed"] == 1
    until(lambda: gone(pid), 10, f"end of process {pid}")
    assert pods_of(cluster, "sleeps-past-deadline") == []  # deleted, as the Job controller does
    reasons = [e[1] for e in events_of(cluster, "Job", "sleeps-past-deadline")]
    assert reasons == ["SuccessfulCreate", "SuccessfulDelete", "DeadlineExceeded"]
    assert ("Normal", "Killing", "Stopping container warm-cache") in events_of(cluster, "Pod", pod)


@pytest.mark.parametrize("propagation", ["Background", "Foreground", "Orphan"])
def test_deleting_a_running_job_stops_its_process(
    cluster: SandboxCluster, propagation: str
) -> None:
    name = f"sleeps-deleted-{propagation.lower()}"
    create(cluster, job(name, SLEEP))
    _, pid = running_pid(cluster, name)
    with cluster.api_client() as api:
        client.BatchV1Api(api).delete_namespaced_job(name, NS, propagation_policy=propagation)
    until(lambda: gone(pid), 10, f"end of process {pid}")
    until(lambda: pods_of(cluster, name) == [], 10, f"removal of the pods of {name}")


def test_a_job_cut_off_from_redis_fails(cluster: SandboxCluster) -> None:
    """The `cut-off` lockdown admits no pod to Redis: the warm script gets connection refused."""
    cluster.redis().flushall()
    cluster.fault(Fault.CUT_OFF)
    try:
        create(cluster, job("warm-cut-off", WARM))
        done = finished(cluster, "warm-cut-off")
    finally:
        cluster.fault(Fault.CLEAR)
    assert done["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    logs = ok(cluster, "logs", "job/warm-cut-off")
    assert "warm_cache: Redis error: ConnectionError" in logs and "Connection refused" in logs
    assert cluster.redis().dbsize() == 0


def test_a_pod_the_network_policy_does_not_name_cannot_reach_redis(
    cluster: SandboxCluster,
) -> None:
    """Redis admits the API's pods only (redis-from-api): a warm Job's pod template needs the
    API's labels, as it would in the cluster."""
    create(cluster, job("warm-unlabelled", WARM, labels={}))
    done = finished(cluster, "warm-unlabelled")
    assert done["status"]["conditions"][-1]["type"] == "Failed"
    assert "Connection refused" in ok(cluster, "logs", "job/warm-unlabelled")


# ---------------------------------------------------------------------- the rest


def test_redis_host_and_urls_go_to_the_endpoint_the_pod_reaches(cluster: SandboxCluster) -> None:
    show = "import os; print(os.environ['REDIS_HOST'], os.environ['REDIS_PORT'], os.environ['REDIS_URL'], os.getcwd())"  # noqa: E501
    env = [*REDIS_ENV, {"name": "REDIS_HOST", "value": "redis"}]
    create(cluster, job("shows-env", ["python3", "-c", show], env=env))
    finished(cluster, "shows-env")
    port = cluster.redis_port
    assert ok(cluster, "logs", "job/shows-env").split() == [
        "127.0.0.1", str(port), f"redis://127.0.0.1:{port}/0", str(IMAGES / "treebeard-api")
    ]  # fmt: skip


def test_ttl_after_finished_removes_the_job_and_its_pods(cluster: SandboxCluster) -> None:
    create(cluster, job("done-then-gone", ["python", "-c", "pass"], ttlSecondsAfterFinished=0))
    until(lambda: read_job(cluster, "done-then-gone") is None, what="removal of the Job")
    until(lambda: pods_of(cluster, "done-then-gone") == [], what="removal of its pod")


def test_a_job_kube_apiserver_refuses(cluster: SandboxCluster) -> None:
    manifest = job("restarts-always", WARM)
    manifest["spec"]["template"]["spec"].pop("restartPolicy")
    with pytest.raises(ApiException) as refused:
        create(cluster, manifest)
    assert refused.value.status == 422
    message = json.loads(refused.value.body or "{}")["message"]
    assert message == (
        'Job "restarts-always" is invalid: spec.template.spec.restartPolicy: '
        'Unsupported value: "Always": supported values: "OnFailure", "Never"'
    )


def test_a_jobs_pod_is_never_an_api_pod() -> None:
    """Even in the API's image with a container named `api`, it serves no traffic."""
    manifest = job("in-the-api-image", WARM)
    manifest["metadata"].update(namespace=NS, uid="0f1e2d3c")
    manifest["spec"]["template"]["spec"]["containers"][0]["name"] = "api"
    assert not is_api_pod(pod_manifest(manifest))


def test_on_failure_restarts_the_container_in_its_pod(cluster: SandboxCluster) -> None:
    """restartPolicy OnFailure: the kubelet restarts the container in place, each restart
    counting against backoffLimit; past it the Job fails and its pod is deleted."""
    manifest = job("exits-3-in-place", ["python", "-c", "import sys; sys.exit(3)"],
                   backoffLimit=1)  # fmt: skip
    manifest["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    create(cluster, manifest)
    done = finished(cluster, "exits-3-in-place")
    assert done["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 1
    events = events_of(cluster, "Job", "exits-3-in-place")
    [created] = [message for _, reason, message in events if reason == "SuccessfulCreate"]
    pod = created.removeprefix("Created pod: ")
    started = [e for e in events_of(cluster, "Pod", pod) if e[1] == "Started"]
    assert len(started) == 2  # the first run and one restart
    assert ("Normal", "SuccessfulDelete", f"Deleted pod: {pod}") in events
    assert pods_of(cluster, "exits-3-in-place") == []


def test_a_pod_deleted_while_it_runs_counts_as_failed_and_is_replaced(
    cluster: SandboxCluster,
) -> None:
    create(cluster, job("sleeps-pod-deleted", SLEEP, backoffLimit=1))
    first, pid = running_pid(cluster, "sleeps-pod-deleted")
    ok(cluster, "delete", "pod", first, "--wait=false")
    until(lambda: gone(pid), 10, f"end of process {pid}")
    second, _ = running_pid(cluster, "sleeps-pod-deleted")
    assert second != first
    assert (read_job(cluster, "sleeps-pod-deleted") or {})["status"]["failed"] == 1
    ok(cluster, "delete", "job", "sleeps-pod-deleted")


def test_a_command_that_is_not_there_fails_to_start(cluster: SandboxCluster) -> None:
    create(cluster, job("no-such-command", ["warm-the-cache-please"]))
    finished(cluster, "no-such-command")
    [pod] = pods_of(cluster, "no-such-command")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert '"warm-the-cache-please": executable file not found in $PATH' in terminated["message"]


def test_stopping_the_cluster_stops_the_jobs_processes(tmp_path: Path) -> None:
    with SandboxCluster(tmp_path) as own:
        create(own, job("sleeps-until-shutdown", SLEEP))
        _, pid = running_pid(own, "sleeps-until-shutdown")
    until(lambda: gone(pid), 10, f"end of process {pid}")
