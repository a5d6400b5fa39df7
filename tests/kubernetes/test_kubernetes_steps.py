"""The Kubernetes activities against the sandbox cluster: the official client over HTTP, real
redis-server pods, and the worker's least-privilege Role enforced by the API server (every
call here is made with the token bound to deploy/k8s/rbac/role.yaml)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.kubernetes.client import (
    K8S_CONFLICT,
    K8S_FORBIDDEN,
    K8S_INVALID,
    K8S_NOT_CONFIGURED,
    K8S_NOT_FOUND,
    K8S_UNAVAILABLE,
    KubernetesAccess,
    as_application_error,
    guarded_patch,
    read_json,
)
from activities.kubernetes.steps import KubernetesActivities
from activities.targets import ConfiguredTarget, TargetBook, Workload
from contracts.kubernetes import CACHE_ENV, ORIGINAL_REPLICAS, RESTARTED_AT, KubeProblem
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster, write_kubeconfig
from sandbox.controller import pod_ready
from sandbox.kube.tls import make_certs
from worker.rbac import roles_for
from worker.settings.runbook import Settings

NS = "treebeard-production"


@pytest.fixture
def steps(cluster: SandboxCluster, target: RedisTarget) -> KubernetesActivities:
    access = KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig)
    return KubernetesActivities.from_access(access, sandbox_targets(target))


@pytest.fixture
def admin_steps(cluster: SandboxCluster, target: RedisTarget) -> KubernetesActivities:
    """As the cluster's admin: objects the Role does not name answer 404, not 403."""
    access = KubernetesAccess(kubeconfig=cluster.kubeconfig)
    return KubernetesActivities.from_access(access, sandbox_targets(target))


def sandbox_targets(target: RedisTarget) -> TargetBook:
    return TargetBook([ConfiguredTarget(name="sandbox", target=target)])


@pytest.fixture
def target(cluster: SandboxCluster) -> RedisTarget:
    return RedisTarget(
        redis_url=cluster.redis_url,
        namespace=NS,
        statefulset="redis",
        api_deployment="treebeard-api",
        api_replicas=3,
        fallback_replicas=6,
    )


@pytest.fixture
def admin(cluster: SandboxCluster) -> client.ApiClient:
    return cluster.api_client()


def soon(seconds: float = 20) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1) as conn:
            return bool(conn.ping())
    except redis.RedisError:
        return False


def patches_by_runbook(cluster: SandboxCluster, resource: str) -> int:
    return sum(
        1
        for r in cluster.api.audit
        if r.verb == "patch" and r.resource == resource and r.user.endswith(":redis-runbook")
    )


def sts_json(admin: client.ApiClient) -> dict[str, Any]:
    return read_json(
        client.AppsV1Api(admin).read_namespaced_stateful_set, "redis", NS, timeout=(5, 5)
    )


def deploy_json(admin: client.ApiClient) -> dict[str, Any]:
    return read_json(
        client.AppsV1Api(admin).read_namespaced_deployment, "treebeard-api", NS, timeout=(5, 5)
    )


def add_decoy_pod(admin: client.ApiClient) -> None:
    """A pod in the same namespace that is not the StatefulSet's: selectors must skip it."""
    core: Any = client.CoreV1Api(admin)
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "other-0", "labels": {"app": "other"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    core.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "other-0.1"},
            "involvedObject": {"kind": "Pod", "name": "other-0", "namespace": NS},
            "reason": "Decoy",
            "message": "not about redis",
            "type": "Warning",
        },
    )


# ---------------------------------------------------------------------- inspect_kubernetes


def test_inspect_healthy_honours_selectors(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget, admin: Any
) -> None:
    add_decoy_pod(admin)
    facts = steps.inspect_kubernetes(target)
    assert facts.reachable and facts.problem is KubeProblem.NONE, facts.findings
    assert facts.statefulset is not None and facts.statefulset.rollout_complete
    assert [p.name for p in facts.pods] == ["redis-0"]
    assert facts.pods[0].ready and facts.pods[0].phase == "Running"
    assert {e.object_name for e in facts.events} <= {"redis", "redis-0"}
    assert "Started" in {e.reason for e in facts.events}
    assert [(p.name, p.bound) for p in facts.pvcs] == [("data-redis-0", True)]
    assert (facts.memory_limit, facts.memory_limit_bytes) == ("32Mi", 32 * 2**20)
    assert (facts.ready_endpoints, facts.not_ready_endpoints) == (1, 0)
    assert facts.api_deployment is not None
    assert (facts.api_deployment.replicas, facts.api_deployment.cache_enabled) == (3, True)
    assert not (facts.oom_killed or facts.crash_looping or facts.pvc_unbound or facts.pod_pending)


@pytest.mark.parametrize(
    ("fault", "problem", "flag"),
    [
        ("oom", KubeProblem.OOM_KILLED, "oom_killed"),
        ("crashloop", KubeProblem.CRASH_LOOP, "crash_looping"),
        ("pvc-unbound", KubeProblem.PENDING_UNBOUND_PVC, "pvc_unbound"),
        ("down", KubeProblem.NOT_READY, None),
    ],
)
def test_inspect_names_the_problem(
    cluster: SandboxCluster,
    steps: KubernetesActivities,
    target: RedisTarget,
    fault: str,
    problem: KubeProblem,
    flag: str | None,
) -> None:
    cluster.fault(fault)
    deadline = time.monotonic() + 10
    while (facts := steps.inspect_kubernetes(target)).problem is not problem:
        assert time.monotonic() < deadline, (facts.problem, facts.findings)
        time.sleep(0.1)
    if flag:
        assert getattr(facts, flag) is True
    if fault == "pvc-unbound":
        assert facts.pod_pending and "unbound" in (facts.pods[0].unschedulable or "")
    if fault == "down":
        assert facts.ready_endpoints == 0 and facts.has("no_ready_endpoints")


def test_inspect_reports_missing_unconfigured_and_unreachable(
    tmp_path: Path, admin_steps: KubernetesActivities, target: RedisTarget
) -> None:
    missing = admin_steps.inspect_kubernetes(target.model_copy(update={"statefulset": "nope"}))
    assert missing.reachable and missing.problem is KubeProblem.STATEFULSET_MISSING
    assert missing.has("statefulset_not_found")

    unconfigured = KubernetesActivities.from_access(
        KubernetesAccess(kubeconfig=tmp_path / "no-such-kubeconfig")
    )
    facts = unconfigured.inspect_kubernetes(target)
    assert not facts.reachable and facts.problem is KubeProblem.UNAVAILABLE
    assert facts.has("kubernetes_not_configured")
    with pytest.raises(ApplicationError) as err:
        unconfigured.restart(target, "t1")
    assert (err.value.type, err.value.non_retryable) == (K8S_NOT_CONFIGURED, True)

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = write_kubeconfig(
        tmp_path / "dead", f"https://127.0.0.1:{port}", "t", "u", NS, make_certs(tmp_path).ca_pem
    )
    offline = KubernetesActivities.from_access(KubernetesAccess(kubeconfig=dead))
    facts = offline.inspect_kubernetes(target)
    assert not facts.reachable and facts.has("kubernetes_unreachable")
    with pytest.raises(ApplicationError) as err:
        offline.scale(target, 4)
    assert (err.value.type, err.value.non_retryable) == (K8S_UNAVAILABLE, False)


# ---------------------------------------------------------------------- restart, wait_ready


def test_restart_writes_the_stamp_once_per_incident(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget, admin: Any
) -> None:
    first = steps.restart(target, "2026-11-26T03:00:00Z")
    assert first.restarted and first.changed and first.previous_stamp is None
    retried = steps.restart(target, "2026-11-26T03:00:00Z")
    assert not retried.restarted and not retried.changed
    assert patches_by_runbook(cluster, "statefulsets") == 1
    ready = steps.wait_ready(target, soon())
    assert ready.ready and ready.ping_ok
    assert cluster.restarts() == 1
    sts = sts_json(admin)
    template = sts["spec"]["template"]
    assert template["metadata"]["annotations"] == {RESTARTED_AT: "2026-11-26T03:00:00Z"}
    assert template["metadata"]["labels"]["app"] == "redis"
    assert [c["name"] for c in template["spec"]["containers"]] == ["redis", "exporter"]
    second = steps.restart(target, "2026-11-26T04:00:00Z")  # a later incident restarts again
    assert second.restarted and second.previous_stamp == "2026-11-26T03:00:00Z"
    assert steps.wait_ready(target, soon()).ready
    assert cluster.restarts() == 2


def test_killed_redis_comes_back_after_restart_and_wait_ready(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget
) -> None:
    cluster.fault("down")
    assert not answers(target.redis_url)
    steps.restart(target, "incident-1")
    result = steps.wait_ready(target, soon(), poll_seconds=0.1)
    assert result.ready, result.reason
    assert answers(target.redis_url)


def test_crashloop_needs_force_delete(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget
) -> None:
    cluster.fault("crashloop")
    steps.restart(target, "incident-1")
    stuck = steps.wait_ready(target, soon(1.5), poll_seconds=0.1)
    assert not stuck.ready and not answers(target.redis_url)
    facts = steps.inspect_kubernetes(target)
    assert facts.problem is KubeProblem.CRASH_LOOP and facts.pod_terminating
    deleted = steps.force_delete_pod(target, "redis-0", facts.pods[0].uid)
    assert deleted.deleted and deleted.changed
    again = steps.force_delete_pod(target, "redis-0", facts.pods[0].uid)  # a retry
    assert not again.deleted and not again.changed
    result = steps.wait_ready(target, soon(), poll_seconds=0.1)
    assert result.ready, result.reason
    assert answers(target.redis_url)


def test_wait_ready_heartbeats_and_returns_not_ready_at_the_deadline(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget
) -> None:
    cluster.fault("down")
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    began = time.monotonic()
    result = env.run(steps.wait_ready, target, soon(0.8), 0.1)
    assert not result.ready and result.waited_seconds >= 0.7
    assert time.monotonic() - began < 5
    assert len(beats) >= 3 and "ready" in str(beats[-1])
    past = steps.wait_ready(target, datetime.now(UTC) - timedelta(seconds=5))
    assert not past.ready  # a deadline already gone: one look, no error


@contextmanager
def new_pod_ready_at(cluster: SandboxCluster, within: float = 20.0) -> Iterator[list[float]]:
    """The monotonic time the sandbox first marks a new incarnation of redis-0 Ready, read
    from the API server's own store every 10 ms (no HTTP in between), known when the block
    ends. Seen at most a look later than it happened, never earlier."""

    def pods() -> list[dict[str, Any]]:
        return cluster.server.call(cluster.api.list_objects("pods", NS, {"app": "redis"}))

    (before,) = [p["metadata"]["uid"] for p in pods()]
    seen: list[float] = []
    until = time.monotonic() + within

    def look() -> None:
        while not seen and time.monotonic() < until:
            if any(p["metadata"]["uid"] != before and pod_ready(p) for p in pods()):
                seen.append(time.monotonic())
            time.sleep(0.01)

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        thread.join()


def test_wait_ready_sees_redis_back_at_once_not_at_its_next_poll(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget
) -> None:
    """Polling every 5 s would answer up to 5 s after the new pod came back; the watches see
    it as it happens. The bound is generous: the shared machine sets it, not the design."""
    cluster.fault("down")
    with new_pod_ready_at(cluster) as ready_at:
        steps.restart(target, "incident-fast")
        result = steps.wait_ready(target, soon(), poll_seconds=5)
        returned = time.monotonic()
    assert result.ready and result.ping_ok, result.reason
    assert ready_at, "the sandbox never marked the new pod Ready"
    assert returned - ready_at[0] < 1.0
    assert answers(target.redis_url)


def runbook_records(cluster: SandboxCluster, verb: str, resource: str) -> int:
    return sum(
        1
        for r in list(cluster.api.audit)
        if (r.user, r.verb, r.resource) == (cluster.runbook_user, verb, resource)
    )


def eventually(check: Callable[[], bool], within: float = 20.0) -> float:
    """Poll until `check` holds; when it first did (monotonic)."""
    until = time.monotonic() + within
    while not check():
        assert time.monotonic() < until, "never happened"
        time.sleep(0.01)
    return time.monotonic()


def test_wait_ready_reads_again_at_once_when_its_watch_expired(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget
) -> None:
    """410 Gone on the StatefulSet's watch: a fresh read and new watches at once, not after
    the pause an API error gets (5 s here). Redis is down until the restart, so the first
    look has to watch."""
    cluster.fault("down")
    gone = cluster.api.failures.add(
        verb="watch", resource="statefulsets", user=cluster.runbook_user, status=410
    )
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(steps.wait_ready, target, soon(), 5)
        spent = eventually(lambda: gone.spent)
        again = eventually(lambda: runbook_records(cluster, "watch", "statefulsets") >= 2)
        steps.restart(target, "incident-gone")
        result = waiting.result(timeout=30)
    assert result.ready, result.reason
    assert again - spent < 2  # the look after the 410 read and watched again, unpaused
    assert runbook_records(cluster, "get", "statefulsets") >= 2  # read afresh


def test_wait_ready_waits_out_503s_on_its_watches(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget
) -> None:
    """A 503 on a watch is "not ready yet, look again" after the pause, as on a read."""
    cluster.fault("down")
    refused = cluster.api.failures.add(
        verb="watch", resource="pods", user=cluster.runbook_user, status=503, times=2
    )
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(steps.wait_ready, target, soon(), 0.1)
        eventually(lambda: refused.spent)
        steps.restart(target, "incident-503")
        result = waiting.result(timeout=30)
    assert result.ready, result.reason


def test_force_delete_only_deletes_the_statefulsets_pods(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget, admin: Any
) -> None:
    add_decoy_pod(admin)
    with pytest.raises(ApplicationError) as err:
        steps.force_delete_pod(target, "other-0")
    assert err.value.non_retryable
    with pytest.raises(ApplicationError) as unnamed:  # the Role names the StatefulSet's pods
        steps.force_delete_pod(target, "redis-7")
    assert unnamed.value.type == K8S_FORBIDDEN and unnamed.value.non_retryable
    before = steps.inspect_kubernetes(target).pods[0].uid
    replaced = steps.force_delete_pod(target, "redis-0", "some-older-uid")
    assert not replaced.deleted
    deleted = steps.force_delete_pod(target)
    assert deleted.deleted and deleted.uid == before
    assert steps.wait_ready(target, soon(), poll_seconds=0.1).ready


# ---------------------------------------------------------------------- raise_memory_limit


def test_raise_memory_limit_changes_only_that_limit(
    cluster: SandboxCluster,
    steps: KubernetesActivities,
    admin_steps: KubernetesActivities,
    target: RedisTarget,
    admin: Any,
) -> None:
    before = sts_json(admin)["spec"]["template"]["spec"]["containers"]
    result = steps.raise_memory_limit(target, "64Mi")
    assert result.changed and (result.previous, result.limit) == ("32Mi", "64Mi")
    assert not steps.raise_memory_limit(target, "64Mi").changed  # a retry
    assert patches_by_runbook(cluster, "statefulsets") == 1
    after = sts_json(admin)["spec"]["template"]["spec"]["containers"]
    expected = [dict(c) for c in before]
    expected[0]["resources"] = {**before[0]["resources"]}
    expected[0]["resources"]["limits"] = {**before[0]["resources"]["limits"], "memory": "64Mi"}
    # maxmemory doubles with the limit, written into the args so the restart keeps it, with
    # the live maxmemory-policy and maxclients (from the config file here: args win over it)
    live = ["--maxmemory-policy", "noeviction", "--maxclients", "64"]
    expected[0]["args"] = [*before[0]["args"], *live, "--maxmemory", str(48 * 2**20)]
    assert after == expected  # requests, cpu limit, env, other args, mounts, the sidecar: intact
    assert steps.wait_ready(target, soon(), poll_seconds=0.1).ready
    with redis.Redis.from_url(target.redis_url) as conn:
        assert conn.config_get("maxmemory")["maxmemory"] == str(48 * 2**20)
    for bad, kind in (("lots", "KubernetesBadRequest"), ("16Mi", K8S_INVALID)):
        with pytest.raises(ApplicationError) as err:
            steps.raise_memory_limit(target, bad)  # not a quantity; below the request
        assert (err.value.type, err.value.non_retryable) == (kind, True)
    with pytest.raises(ApplicationError) as err:
        admin_steps.raise_memory_limit(target, "1Gi", container="nope")
    assert (err.value.type, err.value.non_retryable) == (K8S_NOT_FOUND, True)


# ---------------------------------------------------------------------- the API Deployment


def test_fallback_re_enable_and_scale_back(
    cluster: SandboxCluster, steps: KubernetesActivities, target: RedisTarget, admin: Any
) -> None:
    before = deploy_json(admin)
    fallback = steps.enable_fallback(target)
    assert (fallback.original_replicas, fallback.replicas, fallback.changed) == (3, 6, True)
    retried = steps.enable_fallback(target)  # a retry after the first attempt succeeded
    assert (retried.original_replicas, retried.replicas, retried.changed) == (3, 6, False)
    assert patches_by_runbook(cluster, "deployments") == 1
    during = deploy_json(admin)
    assert during["spec"]["replicas"] == 6
    assert during["metadata"]["annotations"][ORIGINAL_REPLICAS] == "3"
    api, envoy = during["spec"]["template"]["spec"]["containers"]
    old_api, old_envoy = before["spec"]["template"]["spec"]["containers"]
    assert envoy == old_envoy
    assert api["env"] == [
        {**e, "value": "false"} if e["name"] == CACHE_ENV else e for e in old_api["env"]
    ]
    assert {k: v for k, v in api.items() if k != "env"} == {
        k: v for k, v in old_api.items() if k != "env"
    }

    enabled = steps.re_enable(target)
    assert enabled.changed and enabled.original_replicas == 3
    assert not steps.re_enable(target).changed
    scaled = steps.scale(target, fallback.original_replicas)
    assert (scaled.previous, scaled.replicas, scaled.changed) == (6, 3, True)
    assert not steps.scale(target, 3).changed  # a retried scale leaves the same count
    after = deploy_json(admin)
    assert after["spec"] == before["spec"]
    assert ORIGINAL_REPLICAS not in (after["metadata"].get("annotations") or {})
    assert steps.inspect_kubernetes(target).api_deployment.cache_enabled is True  # type: ignore[union-attr]


def test_scale_defaults_and_refusals(
    steps: KubernetesActivities, admin_steps: KubernetesActivities, target: RedisTarget
) -> None:
    assert steps.scale(target.model_copy(update={"api_replicas": 5})).replicas == 5
    with pytest.raises(ApplicationError) as err:
        steps.scale(target.model_copy(update={"api_deployment": None}), 2)
    assert err.value.non_retryable
    with pytest.raises(ApplicationError) as err:
        steps.scale(target, 2, deployment="nope")  # the Role names the API Deployment
    assert (err.value.type, err.value.non_retryable) == (K8S_FORBIDDEN, True)
    with pytest.raises(ApplicationError) as err:
        admin_steps.scale(target, 2, deployment="nope")
    assert (err.value.type, err.value.non_retryable) == (K8S_NOT_FOUND, True)


# ---------------------------------------------------------------------- errors


def test_errors_are_sorted_into_retryable_or_not(
    cluster: SandboxCluster,
    steps: KubernetesActivities,
    admin_steps: KubernetesActivities,
    target: RedisTarget,
    admin: Any,
) -> None:
    with pytest.raises(ApplicationError) as err:
        admin_steps.restart(target.model_copy(update={"statefulset": "nope"}), "t1")
    assert (err.value.type, err.value.non_retryable) == (K8S_NOT_FOUND, True)
    with pytest.raises(ApplicationError) as err:  # outside the Role's namespace
        steps.restart(target.model_copy(update={"namespace": "default"}), "t1")
    assert (err.value.type, err.value.non_retryable) == (K8S_FORBIDDEN, True)

    apps = client.AppsV1Api(admin)
    with pytest.raises(ApplicationError) as err:  # a guard that never holds: 422 each time
        guarded_patch(
            "test",
            lambda: sts_json(admin),
            lambda sts: [{"op": "test", "path": "/spec/replicas", "value": 99}],
            lambda ops: apps.patch_namespaced_stateful_set("redis", NS, ops),
        )
    assert (err.value.type, err.value.non_retryable) == (K8S_INVALID, True)

    stale = apps.read_namespaced_stateful_set("redis", NS)
    apps.patch_namespaced_stateful_set("redis", NS, {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(client.ApiException) as conflict:
        apps.replace_namespaced_stateful_set("redis", NS, stale)
    error = as_application_error(conflict.value, "replace")
    assert (error.type, error.non_retryable) == (K8S_CONFLICT, False)

    # The API server itself failing (kmock's own reaction DSL on the emulator) is retryable.
    cluster.api[f"patch /apis/apps/v1/namespaces/{NS}/deployments/treebeard-api"] << 503
    with pytest.raises(ApplicationError) as err:
        steps.scale(target, 5)
    assert (err.value.type, err.value.non_retryable) == (K8S_UNAVAILABLE, False)


def test_fallback_never_scales_a_busier_api_down(
    steps: KubernetesActivities, target: RedisTarget, admin: Any
) -> None:
    """An API already at 20 replicas keeps 20 while it serves from the database, and the
    scale back returns it to 20."""
    client.AppsV1Api(admin).patch_namespaced_deployment(
        "treebeard-api", NS, {"spec": {"replicas": 20}}
    )
    fallback = steps.enable_fallback(target, 6)
    assert (fallback.original_replicas, fallback.replicas) == (20, 20)
    during = deploy_json(admin)
    assert during["spec"]["replicas"] == 20
    api = during["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in api["env"]}[CACHE_ENV] == "false"
    steps.re_enable(target)
    assert steps.scale(target, fallback.original_replicas).replicas == 20
    assert deploy_json(admin)["spec"]["replicas"] == 20


def test_the_cache_switch_and_containers_come_from_the_target(
    cluster: SandboxCluster, target: RedisTarget, admin: Any
) -> None:
    """A target whose API turns its cache off with USE_REDIS=no: that is what fallback sets
    (and re_enable undoes); CACHE_ENABLED, not this API's switch, is left alone."""
    deploy = client.AppsV1Api(admin)
    body = deploy_json(admin)
    api = body["spec"]["template"]["spec"]["containers"][0]
    api["env"] = [*api["env"], {"name": "USE_REDIS", "value": "yes"}]
    deploy.patch_namespaced_deployment("treebeard-api", NS, {"spec": body["spec"]})
    switch = Workload(cache_env="USE_REDIS", cache_on="yes", cache_off="no")
    book = TargetBook([ConfiguredTarget(name="sandbox", target=target, workload=switch)])
    steps = KubernetesActivities.from_access(
        KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig), book
    )

    def env() -> dict[str, str]:
        containers = deploy_json(admin)["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value") for e in containers[0]["env"]}

    fallback = steps.enable_fallback(target, 6)
    assert env()["USE_REDIS"] == "no" and env()[CACHE_ENV] == "true"
    assert fallback.after == {"replicas": 6, "USE_REDIS": "no"}
    assert steps.inspect_kubernetes(target).api_deployment.cache_enabled is False  # type: ignore[union-attr]
    steps.re_enable(target)
    assert env()["USE_REDIS"] == "yes"
    assert steps.inspect_kubernetes(target).api_deployment.cache_enabled is True  # type: ignore[union-attr]


def test_an_autoscaler_on_the_api_is_raised_for_the_fallback_and_restored(
    tmp_path: Path,
) -> None:
    """With an HPA (min 2, max 4) the fallback raises its minimum to the fallback count
    instead of being fought, and the scale back gives it its minimum again. The worker is
    held to the Role `runbook rbac` makes for a target that names its autoscaler."""
    route = {"name": "sandbox", "redis_url": "redis://127.0.0.1:1/0", "namespace": NS,
             "api_deployment": "treebeard-api",
             "workload": {"api_hpa": "treebeard-api"}}  # fmt: skip
    settings = Settings(targets=[route])
    role = tmp_path / "role.yaml"
    role.write_text(yaml.safe_dump_all(roles_for(settings)))
    with SandboxCluster(tmp_path / "sandbox", role_file=role) as cluster:
        hpa = {
            "metadata": {"name": "treebeard-api", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": "treebeard-api"},
                "minReplicas": 2, "maxReplicas": 4,
            },
        }  # fmt: skip
        with cluster.api_client() as admin:
            scaler = client.AutoscalingV2Api(admin)
            scaler.create_namespaced_horizontal_pod_autoscaler(NS, hpa)  # type: ignore[arg-type]
            book = settings.target_book()
            configured = book.configured[0].target
            steps = KubernetesActivities.from_access(
                KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig), book
            )
            fallback = steps.enable_fallback(configured, 6)
            during = scaler.read_namespaced_horizontal_pod_autoscaler("treebeard-api", NS).spec
            again = steps.enable_fallback(configured, 6)  # a retry changes nothing more
            steps.re_enable(configured)
            steps.scale(configured, fallback.original_replicas)
            after = scaler.read_namespaced_horizontal_pod_autoscaler("treebeard-api", NS)

    assert (during.min_replicas, during.max_replicas) == (6, 6)
    assert "autoscaler treebeard-api" in fallback.summary and again.original_replicas == 3
    assert (after.spec.min_replicas, after.spec.max_replicas) == (2, 6)
    assert after.metadata is not None
    assert "redis-runbook.io/original-min-replicas" not in (after.metadata.annotations or {})


def test_the_fallback_sets_the_targets_extra_env_and_re_enable_puts_it_back(
    cluster: SandboxCluster, target: RedisTarget, admin: Any
) -> None:
    """The runbook's fallback step 3, database read replicas: DB_READ_REPLICAS=true with the
    cache switch, and afterwards as it was (absent here; a value it had comes back too)."""
    extra = {"DB_READ_REPLICAS": "true", "DATABASE_URL": "postgres://replica:5432/treebeard"}
    switch = Workload(fallback_env=extra)
    book = TargetBook([ConfiguredTarget(name="sandbox", target=target, workload=switch)])
    steps = KubernetesActivities.from_access(
        KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig), book
    )

    def env() -> list[tuple[str, str]]:
        containers = deploy_json(admin)["spec"]["template"]["spec"]["containers"]
        return [(e["name"], e.get("value")) for e in containers[0]["env"]]

    before = env()
    fallback = steps.enable_fallback(target, 6)
    assert not steps.enable_fallback(target, 6).changed  # a retry
    during = dict(env())
    assert during["DB_READ_REPLICAS"] == "true" and during[CACHE_ENV] == "false"
    assert during["DATABASE_URL"] == "postgres://replica:5432/treebeard"
    assert fallback.after["DB_READ_REPLICAS"] == "true"
    steps.re_enable(target)
    assert env() == before  # the replica URL back, DB_READ_REPLICAS gone, the order kept
    annotations = deploy_json(admin)["metadata"].get("annotations") or {}
    assert not any(k.startswith("redis-runbook.io/original") for k in annotations)
    steps.enable_fallback(target, 6)
    deploy = client.AppsV1Api(admin)  # a hand-written record naming a var the target does not
    forged = {"DB_READ_REPLICAS": None, "DATABASE_URL": None, "REDIS_URL": None}
    deploy.patch_namespaced_deployment("treebeard-api", NS, {"metadata": {"annotations": {
        "redis-runbook.io/original-env": json.dumps(forged)}}})  # fmt: skip
    steps.re_enable(target)
    assert dict(env())["REDIS_URL"] == dict(before)["REDIS_URL"]  # not steered to other vars
    steps.enable_fallback(target, 6)  # someone dropped the annotation by hand
    deploy.patch_namespaced_deployment(
        "treebeard-api", NS, {"metadata": {"annotations": {"redis-runbook.io/original-env": None}}}
    )
    assert "left as the fallback set them" in steps.re_enable(target).summary
    with pytest.raises(ValueError, match="not an environment variable name"):
        Workload(fallback_env={"DB READ": "x"})
