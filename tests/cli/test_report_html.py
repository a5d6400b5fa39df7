"""`runbook report --format html` of a real fallback incident on the sandbox: one page whose
timeline chart shows the hit rate before recovery (Redis unreachable, the API on the
database) and after it (watch_hit_rate climbing under real cache-aside traffic), the steps
and approval waits as bars; and the Markdown review with the chart written beside it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from tests.harness import running_worker, start
from tests.sandbox_checks import api_state, fallback_settings, incident, until
from worker.report.charts import series_of

RUNBOOK = str(Path(sys.executable).parent / "runbook")


def report_cli(env: WorkflowEnvironment, workflow_id: str, *args: str) -> str:
    environ = {**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host}
    environ.pop("RUNBOOK_CONFIG", None)
    done = subprocess.run([RUNBOOK, "report", workflow_id, *args], env=environ,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_html_report_of_a_fallback_charts_the_hit_rate_before_and_after(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster, tmp_path: Path
) -> None:
    settings = fallback_settings(cluster)
    await asyncio.to_thread(cluster.fault, "crashloop")
    with CacheTraffic(cluster.redis_port, rate_per_s=100):
        async with running_worker(temporal_env.client, settings):
            handle = await start(temporal_env.client, settings, incident(cluster))
            await until(lambda: api_state(cluster) == (8, "false"), "fallback entered")
            await asyncio.to_thread(cluster.fault, "clear")
            report = await handle.result()

    data = series_of(report)
    assert data.fallback is not None
    entered, left = data.fallback
    assert data.unreachable and min(data.unreachable) < entered  # before: no cache at all
    assert data.watched and all(t >= left for t, _ in data.watched)  # after the re-enable
    assert max(rate for _, rate in data.watched) >= 0.6
    assert any(b.label.startswith("approval: force_delete_pod") for b in data.waits)

    page = tmp_path / "review.html"
    report_cli(temporal_env, handle.id, "--format", "html", "--out", str(page))
    html = page.read_text()
    assert html.startswith("<!doctype html>") and '<figure id="timeline"><svg' in html
    assert data.memory and data.clients and data.latency_ms  # from each diagnosis
    for text in ("Hit rate", "hit rate per interval (watch_hit_rate)", "Redis unreachable",
                 "Latency (PING p50), from each diagnosis", "Memory and clients",
                 "API on the database (cache off)", "approval: force_delete_pod"):  # fmt: skip
        assert text in html, text
    assert "time to mitigate" in html  # the figures table

    review = tmp_path / "review.md"
    report_cli(temporal_env, handle.id, "--out", str(review))
    chart = tmp_path / "review-timeline.svg"
    assert "![Timeline](review-timeline.svg)" in review.read_text()
    assert chart.read_text().lstrip().startswith("<?xml") and "Hit rate" in chart.read_text()
