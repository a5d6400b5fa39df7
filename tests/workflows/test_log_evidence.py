"""Logs as evidence, on the sandbox with the API's traffic running: the report quotes the
API's own Redis errors and the Redis container's log, as a person reading `kubectl logs`
would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.kubernetes.log_evidence import api_log_lines, redis_log_lines
from contracts.diagnosis import Scenario
from sandbox.cluster import SandboxCluster
from tests.harness import dry_run, running_worker, settings_for, start, target_route
from tests.sandbox_checks import ROLE


@pytest.fixture
def busy_cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE, api_traffic=0.1) as running:
        yield running


async def test_an_oom_report_quotes_the_api_and_the_redis_log(
    temporal_env: WorkflowEnvironment, busy_cluster: SandboxCluster
) -> None:
    cluster = busy_cluster
    await asyncio.to_thread(cluster.fault, "oom")
    log = cluster.root / "pods"
    deadline = time.monotonic() + 20
    while not any("OutOfMemoryError" in p.read_text() for p in log.rglob("api.log")):
        assert time.monotonic() < deadline, "the API never logged an OOM"
        await asyncio.sleep(0.2)
    settings = settings_for(targets=[target_route(cluster.redis_url)],
                            kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)})  # fmt: skip
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, dry_run(cluster.redis_url))
        report = await handle.result()

    assert report.scenario is Scenario.OUT_OF_MEMORY, report.reasons
    kube = report.diagnosis.kubernetes
    assert kube is not None
    kinds = {(e.source.split("/")[1], e.kind) for e in kube.log_lines}
    assert ("api", "oom") in kinds and ("redis", "started") in kinds, (kinds, kube.findings)
    assert "## Logs at triage" in report.review
    assert "OutOfMemoryError: command not allowed when used memory > 'maxmemory'" in report.review
    assert "`redis-0/redis` (started" in report.review


def test_the_lines_a_person_acts_on_are_picked_once_each_latest_kept() -> None:
    api = "\n".join([
        "2026-12-01T10:00:00Z INFO GET /items/1 200 3ms cache=hit",
        "2026-12-01T10:00:01Z ERROR redis: Error 111 connecting to redis:6379. Connection refused.",
        "2026-12-01T10:00:02Z ERROR redis: Error 111 connecting to redis:6379. Refused. (2)",
        "2026-12-01T10:00:03Z ERROR db: timeout talking to postgres",  # not about Redis
        "2026-12-01T10:00:04Z ERROR redis: READONLY You can't write against a read only replica.",
    ])  # fmt: skip
    picked = api_log_lines(api, "treebeard-api-x", "api")
    assert [(e.kind, e.count) for e in picked] == [("refused", 2), ("readonly", 1)]
    assert picked[0].line.endswith("(2)")
    redis = "1:M 01 Dec 2026 10:00:00.000 # MISCONF Redis is configured to save RDB snapshots"
    assert [e.kind for e in redis_log_lines(redis + "\n" + "x" * 1000, "redis-0", "redis")] == [
        "persistence"
    ]
