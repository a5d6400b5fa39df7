"""Judgement on real parts: the runbook never acts on a healthy system on its own view alone.
The sandbox cluster (real redis-server pods, readiness by real PING), real Temporal."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis
from kubernetes import client
from temporalio.testing import WorkflowEnvironment

from contracts.alerts import Alert, AlertStatus
from contracts.diagnosis import Scenario
from contracts.incident import Incident, Mode
from contracts.kubernetes import RESTARTED_AT
from contracts.target import RedisTarget
from sandbox import faults
from sandbox.cluster import SandboxCluster
from sandbox.processes import RedisProcess, free_port
from tests.conftest import RedisFactory
from tests.harness import auto, dry_run, running_worker, settings_for, start, target_route
from tests.sandbox_checks import NS, answers, api_state, fallback_settings, incident, until
from workflows.incident.alerts import AlertLedger


def statefulset(cluster: SandboxCluster) -> tuple[int, dict[str, Any]]:
    """(metadata.generation, the pod template's annotations) of the Redis StatefulSet."""
    with cluster.api_client() as api:
        sts = client.AppsV1Api(api).read_namespaced_stateful_set("redis", NS).to_dict()
    template = sts["spec"]["template"]["metadata"] or {}
    return int(sts["metadata"]["generation"]), dict(template.get("annotations") or {})


async def test_only_the_runbook_cut_off_restarts_nothing(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """The worker's URL has the wrong port while the pod is Ready with ready endpoints."""
    wrong = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(
        targets=[target_route(wrong)],
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        thresholds={"vantage_recheck": "0.5s"},
        approvals={"timeout": "1s"},
    )
    before = statefulset(cluster)
    target = RedisTarget(redis_url=wrong, namespace=NS, statefulset="redis",
                         api_deployment="treebeard-api")  # fmt: skip
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, Incident(target=target, mode=Mode.AUTO))
        report = await handle.result()

    assert report.scenario is Scenario.UNREACHABLE_FROM_RUNBOOK
    assert "Kubernetes calls it Ready" in report.reasons[0]
    assert "wrong port" in report.reasons[0] and "NetworkPolicy" in report.reasons[0]
    restart = next(s for s in report.steps if s.name.value == "restart")
    assert restart.requires_approval and restart.status == "skipped"
    assert statefulset(cluster) == before  # generation and restart stamp unchanged
    assert RESTARTED_AT not in before[1]
    assert cluster.restarts() == 0
    assert report.outcome == "escalated"
    assert "unreachable_from_runbook" in report.review
    assert any(e.kind == "vantage" for e in report.timeline)  # it looked twice


async def test_a_network_policy_that_shuts_the_api_out_restarts_nothing(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """Redis is healthy and the runbook reaches it; a lockdown policy keeps the API's pods
    out. The incident names the policy, restarts and flushes nothing, and escalates."""
    await asyncio.to_thread(cluster.fault, "cut-off")
    settings = settings_for(
        targets=[target_route(cluster.redis_url)],
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        approvals={"timeout": "1s"},
    )
    before = statefulset(cluster)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, incident(cluster))
        report = await handle.result()

    assert report.scenario is Scenario.APPLICATION_CUT_OFF, report.reasons
    assert 'NetworkPolicy "redis-lockdown"' in report.reasons[0]
    assert "restarting it would change nothing" in report.reasons[0]
    assert [s.name.value for s in report.steps] == ["diagnose", "diagnose"]
    assert statefulset(cluster) == before and cluster.restarts() == 0
    assert report.outcome == "escalated"
    assert "redis-lockdown" in report.review


class Writer:
    """Write traffic on a thread for as long as the block runs: keys of 1 KiB, never read."""

    def __init__(self, server: RedisProcess) -> None:
        self._client = server.client()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self.written = 0
        self.refused = 0

    def _write(self) -> None:
        payload = "x" * 1024
        while not self._stop.is_set() and self.written < 200_000:
            try:
                self._client.set(f"traffic:{self.written}", payload)
            except redis.exceptions.OutOfMemoryError:
                self.refused += 1
            self.written += 1

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


async def test_a_full_lru_cache_under_writes_is_healthy_and_nothing_changes(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "allkeys-lru"})
    client = server.client()
    settings = settings_for(server.url)
    with Writer(server) as traffic:
        await until(lambda: client.info("stats")["evicted_keys"] > 100, "evicting")
        client.config_resetstat()
        async with running_worker(temporal_env.client, settings):
            report = await (await start(temporal_env.client, settings, auto(server.url))).result()
        issued = {name.removeprefix("cmdstat_") for name in client.info("commandstats")}

    assert report.scenario is Scenario.HEALTHY, report.reasons
    assert report.diagnosis.info is not None and report.diagnosis.info.memory_ratio
    assert report.diagnosis.info.memory_ratio >= 0.9  # full, and fine: it evicts as designed
    assert [s.name.value for s in report.steps] == ["diagnose"]
    assert report.outcome == "resolved"
    assert not issued & {"flushdb", "config|set", "memory|purge"}
    assert traffic.refused == 0


async def test_noeviction_at_the_limit_refusing_writes_is_out_of_memory(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    faults.fill_memory(server.client())
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, dry_run(server.url))).result()

    assert report.scenario is Scenario.OUT_OF_MEMORY
    assert report.diagnosis.info is not None and report.diagnosis.info.oom_errors > 0
    assert "writes refused with OOM" in report.reasons[0]


async def test_alerts_resolved_mid_fallback_still_give_the_api_back(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """Every alert resolves while the API serves from the database: the incident stands down,
    and the API still gets its cache and its 3 replicas back before it ends."""
    await asyncio.to_thread(cluster.fault, "crashloop")
    settings = fallback_settings(cluster, poll="60s")  # it looks again when told, not by time
    down = Alert(source="alertmanager", name="RedisDown", fingerprint="down-1")
    job = incident(cluster).model_copy(update={"alerts": [down]})
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, job, "stand-down")
        await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
        await asyncio.to_thread(cluster.fault, "clear")
        await until(lambda: answers(cluster), "Redis back")  # what made the alert resolve
        await handle.signal("alert", down.model_copy(update={"status": AlertStatus.RESOLVED}))
        report = await asyncio.wait_for(handle.result(), timeout=45)

    assert api_state(cluster) == (3, "true")
    assert any(e.kind == "stand_down" for e in report.timeline)
    restored = [s.name.value for s in report.steps if s.status == "succeeded"]
    assert "re_enable" in restored and "scale" in restored
    assert report.alert_summary.resolved == 1


def test_a_resolved_alert_never_seen_firing_does_not_stand_an_incident_down() -> None:
    ledger = AlertLedger()
    stray = Alert(source="alertmanager", name="NodeDiskFull", status=AlertStatus.RESOLVED,
                  fingerprint="x")  # fmt: skip
    assert ledger.record(stray)
    assert not ledger.all_resolved()
    assert ledger.summary().distinct == 1 and ledger.summary().resolved == 1
    fired = Alert(source="alertmanager", name="RedisDown", fingerprint="y")
    ledger.record(fired)
    assert not ledger.all_resolved()
    ledger.record(fired.model_copy(update={"status": AlertStatus.RESOLVED}))
    assert ledger.all_resolved()


async def test_the_memory_limit_path_keeps_the_eviction_policy_across_its_restart(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    """OOMKilled and full under noeviction: allkeys-lru by CONFIG SET, then a larger limit,
    whose pod restart would have brought noeviction back from the pod's args."""
    await asyncio.to_thread(cluster.fault, "oom")
    with cluster.redis() as conn:
        maxmemory_before = int(conn.config_get("maxmemory")["maxmemory"])
    settings = settings_for(
        cluster.redis_url,
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        approvals={"required_for": []},
        outage={"ready_timeout": "30s", "poll": "0.5s"},
    )
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, incident(cluster))).result()

    done = {s.name.value: s.status for s in report.steps}
    assert done["set_eviction_policy"] == "succeeded"
    assert done["raise_memory_limit"] == "succeeded"
    assert cluster.restarts() >= 1  # the new limit rolled the pod
    with cluster.redis() as conn:
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert int(conn.config_get("maxmemory")["maxmemory"]) > maxmemory_before
    raised = next(s for s in report.steps if s.name.value == "raise_memory_limit")
    assert raised.detail is not None and "maxmemory-policy allkeys-lru" in raised.detail
