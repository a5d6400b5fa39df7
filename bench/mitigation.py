"""Time to mitigate a killed Redis on the sandbox cluster: from the Alertmanager delivery to
the workflow's verified PING, against the same Kubernetes and Redis calls made by a plain
script with no orchestration. Targets: ratio at most 1.3, median overhead at most 0.5 s.
`python -m bench.mitigation [--runs N]`; prints the figures and rewrites its section of
bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
import uvicorn
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.kubernetes.client import KubernetesAccess
from activities.kubernetes.steps import KubernetesActivities
from bench.results import machine, write_section
from contracts.incident import IncidentReport
from contracts.steps import StepName
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster
from sandbox.processes import binary, free_port, wait_for_port
from tests.harness import running_worker, settings_for
from worker.settings.runbook import Settings
from worker.webhook import create_app

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "deploy" / "k8s" / "rbac" / "role.yaml"
NS = "treebeard-production"


def alert_payload(run: int) -> dict[str, object]:
    labels = {"alertname": "RedisDown", "namespace": NS, "severity": "critical", "run": str(run)}
    alert = {"status": "firing", "labels": labels, "annotations": {},
             "startsAt": datetime.now(UTC).isoformat(), "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": f"bench-{run}"}  # fmt: skip
    return {"version": "4", "status": "firing", "receiver": "redis-runbook", "alerts": [alert],
            "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "", "groupKey": f"bench-{run}", "truncatedAlerts": 0}  # fmt: skip


def serve(settings: Settings) -> tuple[uvicorn.Server, int]:
    port = free_port()
    app = create_app(settings, insecure_no_auth=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    threading.Thread(target=server.run, daemon=True).start()
    wait_for_port(port)
    return server, port


def plain_script(cluster: SandboxCluster, target: RedisTarget, run: int) -> float:
    """What a person's script would do: the same restart, wait and PING, nothing around it."""
    steps = KubernetesActivities.from_access(
        KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig)
    )
    cluster.fault("down")
    began = time.perf_counter()
    steps.restart(target, f"script-{run}-{time.time()}")
    ready = steps.wait_ready(target, datetime.now(UTC) + timedelta(seconds=60), 1.0)
    assert ready.ready and redis.Redis.from_url(target.redis_url).ping()
    return time.perf_counter() - began


async def workflow_run(env: WorkflowEnvironment, cluster: SandboxCluster, port: int,
                       workflow_id: str, run: int,
                       phases: list[dict[str, float]]) -> float:  # fmt: skip
    await asyncio.to_thread(cluster.fault, "down")
    began = datetime.now(UTC)
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"http://127.0.0.1:{port}/alerts/alertmanager",
                                 json=alert_payload(run))  # fmt: skip
    answer.raise_for_status()
    handle = env.client.get_workflow_handle(workflow_id, result_type=IncidentReport)
    report = await asyncio.wait_for(handle.result(), timeout=120)
    assert report.outcome == "resolved", report.escalations
    phases.append(phases_of(report, began))
    return (verified_at(report) - began).total_seconds()


def phases_of(report: IncidentReport, began: datetime) -> dict[str, float]:
    """Where the workflow's time goes, from the times its report carries."""
    restart = next(s for s in report.steps if s.name is StepName.RESTART)
    triaged, restarted = report.steps[0].finished_at, restart.finished_at
    assert triaged is not None and restarted is not None
    marks = [
        ("delivery -> incident started", began, report.started_at),
        ("triage: config, Redis and Kubernetes, plan", report.started_at, triaged),
        ("ping (from triage) and restart", triaged, restarted),
        ("wait_ready: rollout and PING, 1 s polls", restarted, verified_at(report)),
    ]
    return {name: (end - start).total_seconds() for name, start, end in marks}


def verified_at(report: IncidentReport) -> datetime:
    """When the workflow's wait_ready saw the rollout done and Redis answering PING: the
    moment it knows the cache is back (the report and notifications come after)."""
    ready = [s for s in report.steps if s.name is StepName.WAIT_READY and s.status == "succeeded"]
    assert ready and ready[0].finished_at is not None, "no successful wait_ready"
    return ready[0].finished_at


def bench_settings(cluster: SandboxCluster, address: str) -> Settings:
    settings = settings_for(
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        outage={"ready_timeout": "60s", "poll": "0.5s"},
        targets=[{"name": "bench", "match": {"namespace": NS}, "redis_url": cluster.redis_url,
                  "namespace": NS, "statefulset": "redis", "api_deployment": "treebeard-api"}],
        webhook={"mode": "auto"},
        limits={"restarts_per_hour": 1000},  # the same target is restarted 2 x runs times
    )  # fmt: skip
    settings.temporal.address = address
    return settings


async def main(runs: int) -> int:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", [Path(sys.executable).parent]),
        data_converter=pydantic_data_converter,
    )
    flows: list[float] = []
    scripts: list[float] = []
    phases: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxCluster(Path(tmp) / "sandbox", role_file=ROLE) as cluster,
    ):
        target = RedisTarget(redis_url=cluster.redis_url, namespace=NS, statefulset="redis",
                             api_deployment="treebeard-api")  # fmt: skip
        settings = bench_settings(cluster, env.client.service_client.config.target_host)
        server, port = serve(settings)
        async with env, running_worker(env.client, settings):
            for run in range(runs):
                flows.append(
                    await workflow_run(env, cluster, port, target.workflow_id, run, phases)
                )
                await asyncio.to_thread(cluster.fault, "clear")  # so the next "down" applies
                scripts.append(await asyncio.to_thread(plain_script, cluster, target, run))
                await asyncio.to_thread(cluster.fault, "clear")
                print(f"run {run}: workflow {flows[-1]:.2f}s, script {scripts[-1]:.2f}s")
        server.should_exit = True
    return report(flows, scripts, phases)


def report(flows: list[float], scripts: list[float], phases: list[dict[str, float]]) -> int:
    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, int(0.95 * len(values)) - 1)]

    flow, script = statistics.median(flows), statistics.median(scripts)
    ratio, overhead = flow / script, flow - script
    ok = ratio <= 1.3 and overhead <= 0.5
    text = "\n".join([
        "### Time to mitigate a killed Redis: `python -m bench.mitigation`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}: sandbox cluster "
        f"(real redis-server pod), Temporal dev server, one worker, the webhook; {len(flows)} runs "
        "each, alternating. Workflow: Alertmanager delivery -> incident -> triage (Redis and "
        "Kubernetes) -> restart -> wait_ready, whose end is the verified PING (its step's "
        "finish time in the report; the report and notifications follow). Script: the same "
        "restart, wait_ready (1 s polls) and PING calls, nothing else.",
        "",
        "| | median | p95 |",
        "|---|---|---|",
        f"| workflow, from the delivery | {flow:.2f} s | {p95(flows):.2f} s |",
        f"| plain script | {script:.2f} s | {p95(scripts):.2f} s |",
        f"| ratio / median overhead | {ratio:.2f} / {overhead:.2f} s | <= 1.3 / <= 0.5 s |",
        "",
        "Where the workflow's time goes (medians):",
        "",
        *[f"- {name}: {statistics.median(p[name] for p in phases):.2f} s" for name in phases[0]],
        "",
        f"Verdict: {'PASS' if ok else 'MISS'}",
    ])  # fmt: skip
    print(text)
    write_section("mitigation", "default", text)
    return 0 if ok else 1


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mitigation", description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    return asyncio.run(main(parser.parse_args().runs))


if __name__ == "__main__":
    raise SystemExit(cli())
