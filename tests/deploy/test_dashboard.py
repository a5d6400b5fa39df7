"""deploy/grafana/redis-runbook-dashboard.json against real data: Debian's Prometheus scrapes
redis_exporter, the webhook and the worker's own endpoint (metrics.address) while an incident
opened by the real alert chain waits for an approval, then after it resolves. Every panel's
query, with the dashboard's variables set to all, must return data at one of those moments."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from contracts.decisions import Decision
from contracts.incident import IncidentReport
from sandbox.alerting import INSTALL_HINT, AlertingChain, missing_binaries
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from sandbox.processes import free_port
from tests.harness import running_worker, settings_for, wait_for_pending
from tests.intake.test_webhook_helpers import TOKEN, address, serve
from worker.client import worker_metrics
from worker.settings.runbook import MetricsSettings
from worker.webhook import create_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "redis-runbook-dashboard.json"
ROLE = DEPLOY / "k8s" / "rbac" / "role.yaml"
NS = "treebeard-production"
WORKFLOW_ID = f"redis-cache-failure/{NS}/redis"
# What Grafana puts in for the dashboard's variables with "All" selected.
VARIABLES = {"$target": ".*", "$namespace": ".*", "$task_queue": ".*", "$__rate_interval": "5m"}

pytestmark = pytest.mark.skipif(
    bool(missing_binaries()),
    reason=f"needs {', '.join(missing_binaries())}: {INSTALL_HINT}",
)


def panel_queries() -> dict[str, str]:
    """Each panel's queries ("title (refId)"), variables filled in as Grafana would."""
    queries = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            queries[f"{panel['title']} ({target['refId']})"] = expr
    return queries


async def answered(http: httpx.AsyncClient, prometheus: str, queries: dict[str, str]) -> set[str]:
    """The panels whose query returns at least one series with a number."""
    found = set()
    for title, expr in queries.items():
        body = (await http.get(f"{prometheus}/api/v1/query", params={"query": expr})).json()
        assert body["status"] == "success", (title, body)
        values = [r["value"][1] for r in body["data"]["result"]]
        if any(v not in ("NaN", "+Inf", "-Inf") for v in values):
            found.add(title)
    return found


async def until_answered(
    http: httpx.AsyncClient, prometheus: str, queries: dict[str, str], want: set[str]
) -> set[str]:
    """Poll Prometheus (it scrapes every second) until the panels in `want` have data."""
    deadline = time.monotonic() + 20
    while True:
        got = await answered(http, prometheus, queries)
        if want <= got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


async def test_every_panel_of_the_dashboard_returns_data_during_an_incident(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    queries = panel_queries()
    metrics = f"127.0.0.1:{free_port()}"
    exporter = worker_metrics(MetricsSettings(address=metrics))
    assert exporter is not None
    client = await Client.connect(address(temporal_env), data_converter=pydantic_data_converter,
                                  runtime=exporter.runtime)  # fmt: skip
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        target = {"name": f"{NS}/redis", "match": {"namespace": NS, "alertname": "Redis.*"},
                  "redis_url": cluster.redis_url, "namespace": NS, "statefulset": "redis",
                  "api_deployment": "treebeard-api"}  # fmt: skip
        settings = settings_for(
            kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
            approvals={"required_for": ["set_eviction_policy"], "timeout": "10m"},
            webhook={"mode": "auto", "auth": {"alertmanager": ["bearer"]}},
            webhook_token=TOKEN,
            targets=[target],
        )
        settings.temporal.address = address(temporal_env)
        worker_port = int(metrics.rsplit(":", 1)[1])
        with (
            serve(create_app(settings)) as webhook_url,
            AlertingChain(tmp_path / "chain", cluster.redis_port,
                          int(webhook_url.rsplit(":", 1)[1]), token, worker_port) as chain,
            CacheTraffic(cluster.redis_port, rate_per_s=50, max_seconds=90),
        ):  # fmt: skip
            prometheus = chain.prometheus_url
            async with httpx.AsyncClient(timeout=5) as http, running_worker(client, settings):
                earlier = [w.run_id async for w in
                           client.list_workflows(f"WorkflowId = '{WORKFLOW_ID}'")]  # fmt: skip
                await asyncio.to_thread(cluster.fault, "oom")  # the chain opens the incident
                run_id = await until_opened(client, set(earlier))
                handle = client.get_workflow_handle(WORKFLOW_ID, run_id=run_id,
                                                    result_type=IncidentReport)  # fmt: skip
                await wait_for_pending(handle, "set_eviction_policy", within=30)
                waiting = await until_answered(http, prometheus, queries, PENDING_PANELS)
                decision = {"step": "set_eviction_policy", "approver": "bob", "decision": "approve"}
                await handle.execute_update("decide", Decision.model_validate(decision))
                report = await asyncio.wait_for(handle.result(), 60)
                after = await until_answered(http, prometheus, queries, set(queries) - waiting)
    exporter.close()

    assert report.outcome == "resolved", report.escalations
    assert waiting >= PENDING_PANELS, sorted(PENDING_PANELS - waiting)
    missing = set(queries) - waiting - after
    assert not missing, f"panels with no data: {sorted(missing)}"


# Panels with data only while an approval waits.
PENDING_PANELS = {
    "Approvals pending (A)", "Oldest pending approval (age) (A)", "Open incidents (A)"
}  # fmt: skip


async def until_opened(client: Client, earlier: set[str], within: float = 30) -> str:
    """The run the chain opened: the dev server is shared, an earlier test may have left a
    closed run of the same id (whose task queue nobody polls any more)."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = await client.get_workflow_handle(WORKFLOW_ID).describe()
            if found.run_id not in earlier and found.status is WorkflowExecutionStatus.RUNNING:
                return found.run_id
        except RPCError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the alert chain opened no incident")
        await asyncio.sleep(0.25)
