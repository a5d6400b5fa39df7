"""The Kubernetes API failing the way a loaded or upgrading kube-apiserver does, injected into
the sandbox (sandbox/kube/failures.py) for the runbook's own user: 503s, 409 conflicts, a
read slower than the client's timeout, and a write whose reply is lost after it was done.
The activities retry, and each change still takes effect once: counted in the API server's
audit log (committed writes, and what each wrote), the objects' generations, and the history
(the attempt that finished each step)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.steps import StepName
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, settings_for, start
from tests.reliability.counting import (
    FALLBACK_AND_BACK,
    activity_runs,
    committed,
    deployment_changes,
    effects,
    refused,
)
from tests.reliability.incidents import (
    TO_FALLBACK,
    api_state,
    generations,
    incident,
    steps,
    until,
    until_status,
)

# Longer than the client's read timeout (KubernetesAccess.request_timeout, 5 s), so the
# client gives up on the call. The slow read is longer than wait_ready's heartbeat timeout
# (10 s, plus the SDK's heartbeat throttling) and than the 20 s read timeout the client had
# before: that client sat in the call (and urllib3 re-sent the GET), the attempt was lost to
# its heartbeat timeout and wait_ready ran again.
LOST_REPLY_S = 8.0
SLOW_READ_S = 21.0


def settings(cluster: SandboxCluster, **overrides: Any) -> Any:
    return settings_for(
        cluster.redis_url, kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)}, **overrides
    )


@pytest.mark.timeout(180)
async def test_restart_survives_503s_conflicts_and_a_lost_reply(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """The restart's first attempt gets a 503 on its patch; the second gets two conflicts
    (read again, patch again, inside the attempt) and then a patch that is carried out but
    whose reply never comes in time; the third reads the incident's stamp already there and
    writes nothing. Exactly once: one committed StatefulSet patch, generation 2, one Redis
    restart. Triage's first read of the StatefulSet gets a 503 too: a finding, not a failure."""
    await asyncio.to_thread(cluster.fault, "down")
    fail = cluster.api.failures
    me = cluster.runbook_user
    fail.add(verb="get", resource="statefulsets", user=me, status=503)
    fail.add(verb="patch", resource="statefulsets", user=me, status=503)
    fail.add(verb="patch", resource="statefulsets", user=me, status=409, times=2)
    fail.add(verb="patch", resource="statefulsets", user=me, reply_delay=LOST_REPLY_S)
    config = settings(cluster, outage={"ready_timeout": "30s", "poll": "0.5s"})
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, incident(cluster), "api-503-409")
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert fail.pending == []
    assert ("restart", "succeeded") in steps(report)
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert [r.code for r in refused(cluster, "patch", "statefulsets")] == [503, 409, 409]
    assert generations(cluster) == (2, 1)
    assert cluster.restarts() == 1
    assert cluster.redis().ping()
    runs = await activity_runs(handle)
    assert runs.scheduled["restart"] == 1
    assert runs.attempts["restart"] == [3]


@pytest.mark.timeout(180)
async def test_wait_ready_polls_through_503s_and_a_read_slower_than_its_heartbeat(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """While the rollout hangs (crash loop), wait_ready's reads of the StatefulSet get two
    503s and one that takes 21 s: each is "not ready yet, look again", and the same attempt
    sees the rollout finish once the pod stops crashing."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    config = settings(cluster, outage={"ready_timeout": "90s", "poll": "0.5s"})
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, incident(cluster), "api-slow-read")
        await until_status(
            handle, lambda s: s.current_step is StepName.WAIT_READY, "wait_ready running"
        )
        me = cluster.runbook_user
        fail = cluster.api.failures
        fail.add(verb="get", resource="statefulsets", user=me, status=503, times=2)
        fail.add(verb="get", resource="statefulsets", user=me, delay=SLOW_READ_S)
        await until(lambda: not fail.pending, "every injected failure met", within=90)
        await asyncio.to_thread(cluster.fault, "clear")
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    wait = next(s for s in report.steps if s.name is StepName.WAIT_READY)
    assert wait.status == "succeeded"
    gets = [r for r in cluster.api.audit if r.injected and r.verb == "get"]
    assert [r.injected for r in gets] == ["refused 503", "refused 503", f"held {SLOW_READ_S:g}s"]
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert cluster.redis().ping()
    runs = await activity_runs(handle)
    assert runs.attempts["wait_ready"] == [1]
    assert runs.scheduled["restart"] == 1


@pytest.mark.timeout(180)
async def test_fallback_and_restore_survive_a_lost_reply_a_conflict_and_a_503(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """enable_fallback's patch is carried out but its reply is lost: the retry finds the
    fallback in place and still reports the ORIGINAL replicas (3, remembered on the
    Deployment), so the API is scaled back to 3, not to the fallback's 8. re_enable meets a
    conflict (read again, patch again, inside the attempt) and then a 503 (the attempt fails;
    the next one patches). Exactly once: the three Deployment patches, generation 4."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    me = cluster.runbook_user
    fail = cluster.api.failures
    fail.add(verb="patch", resource="deployments", user=me, reply_delay=LOST_REPLY_S)
    fail.add(verb="patch", resource="deployments", user=me, status=409)
    fail.add(verb="patch", resource="deployments", user=me, status=503)
    config = settings(cluster, **TO_FALLBACK)
    async with running_worker(temporal_env.client, config):
        handle = await start(temporal_env.client, config, incident(cluster), "api-fallback")
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await asyncio.to_thread(cluster.fault, "clear")
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert fail.pending == []
    fallback = next(s for s in report.steps if s.name is StepName.ENABLE_FALLBACK)
    assert fallback.result is not None  # the retry's: it found the fallback in place
    assert fallback.result.before == {"replicas": 8, "original_replicas": 3}
    assert deployment_changes(cluster) == FALLBACK_AND_BACK
    assert [r.code for r in refused(cluster, "patch", "deployments")] == [409, 503]
    assert generations(cluster) == (2, 4)
    assert api_state(cluster) == (3, "true")
    runs = await activity_runs(handle)
    assert runs.attempts["enable_fallback"] == [2]
    assert runs.attempts["re_enable"] == [2]
    assert runs.attempts["scale"] == [1]


@pytest.mark.timeout(180)
async def test_force_delete_with_a_503_and_a_lost_reply_deletes_the_pod_once(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """The most destructive step, approved in advance: its first attempt cannot read the pod
    (503); the second deletes it but the reply is lost; the third finds the pod gone or
    already recreated under a new uid and deletes nothing. Exactly once: one committed pod
    DELETE (grace 0, guarded by the uid it read)."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    me = cluster.runbook_user
    fail = cluster.api.failures
    fail.add(verb="get", resource="pods", user=me, status=503)
    fail.add(verb="delete", resource="pods", user=me, reply_delay=LOST_REPLY_S)
    config = settings(
        cluster,
        outage={"ready_timeout": "2s", "fallback_after": "10m", "poll": "0.5s"},
        approvals={"required_for": ["force_delete_pod"]},
    )
    approve = {"step": "force_delete_pod", "approver": "bob"}
    async with running_worker(temporal_env.client, config):
        handle = await start(
            temporal_env.client,
            config,
            incident(cluster),
            "api-force-delete",
            start_signal="approve",
            start_signal_args=[approve],
        )
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert fail.pending == []
    assert ("force_delete_pod", "succeeded") in steps(report)
    [deleted] = committed(cluster, "delete", "pods")
    assert deleted.injected == f"reply held {LOST_REPLY_S:g}s"
    assert [effects(r) for r in committed(cluster, "patch", "statefulsets")] == [("restartedAt",)]
    assert deployment_changes(cluster) == []
    assert cluster.redis().ping()
    runs = await activity_runs(handle)
    assert runs.scheduled["force_delete_pod"] == 1
    assert runs.attempts["force_delete_pod"] == [3]
