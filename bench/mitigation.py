"""Time to mitigate a killed Redis on the sandbox cluster: from the Alertmanager delivery to
the workflow's verified PING, against two baselines with no orchestration, alternated with it
every run:

- literal kubectl: the runbook's shell commands as a person types them, with the real kubectl
  (`rollout restart`, `rollout status`, `wait --for=condition=ready pod/redis-0`), then
  `redis-cli ping` until PONG. One HOME for all runs, so kubectl's discovery cache is warm
  after the first, as a person's would be. Target: workflow / literal at most 1.0.
- plain calls: the workflow's own calls on that path (diagnose_redis and inspect_kubernetes at
  once, restart, wait_ready) made directly by a script, no Temporal. What is left is the
  orchestration. Target: workflow / plain at most 1.1.

Everything runs with the worker's credentials (`runbook_kubeconfig`), held to the shipped Role
plus `list statefulsets`, which `kubectl rollout status` needs (it lists before it watches)
and the worker does not. The delivery goes over a connection already open, so the
benchmark's own HTTP set-up is not charged to the workflow. `python -m bench.mitigation [--runs
N]`; prints the figures and rewrites its section of bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
import uvicorn
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.kubernetes.client import KubernetesAccess
from activities.kubernetes.steps import KubernetesActivities
from activities.redis.diagnosis import RedisDiagnosisActivities
from activities.targets import ConfiguredTarget, TargetBook
from bench.results import machine, write_section
from contracts.incident import IncidentReport
from contracts.steps import StepName
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster
from sandbox.processes import binary, free_port, kubectl, wait_for_port
from tests.harness import running_worker, settings_for
from worker.settings.runbook import Settings
from worker.webhook import create_app

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "deploy" / "k8s" / "rbac" / "role.yaml"
NS = "treebeard-production"
PONG_WITHIN_S = 10.0  # the literal baseline's redis-cli loop gives up after this


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
    """The workflow's own calls on the way to the verified PING, made by a script: the
    judgement's two reads at once (diagnose_redis, inspect_kubernetes), the restart, wait_ready.
    What is left between it and the workflow is the orchestration: the webhook, Temporal's
    tasks and timers, the plan and the record."""
    book = TargetBook([ConfiguredTarget(name="bench", target=target)])
    steps = KubernetesActivities.from_access(
        KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig), book
    )
    diagnosis = RedisDiagnosisActivities(book)
    cluster.fault("down")
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        seen = pool.submit(asyncio.run, diagnosis.diagnose_redis(target))
        facts = pool.submit(steps.inspect_kubernetes, target)
        assert not seen.result().reachable and facts.result().reachable
    steps.restart(target, f"script-{run}-{time.time()}")
    ready = steps.wait_ready(target, datetime.now(UTC) + timedelta(seconds=60), 1.0)
    assert ready.ready and redis.Redis.from_url(target.redis_url).ping()
    return time.perf_counter() - began


def literal_kubectl(cluster: SandboxCluster, home: Path) -> float:
    """The runbook's commands as typed in a shell, each a new kubectl process, then redis-cli
    until PONG."""
    env = {**os.environ, "KUBECONFIG": str(cluster.runbook_kubeconfig), "HOME": str(home)}
    commands = [
        ["rollout", "restart", "statefulset/redis", "-n", NS],
        ["rollout", "status", "statefulset/redis", "-n", NS, "--timeout=60s"],
        ["wait", "--for=condition=ready", "pod/redis-0", "-n", NS, "--timeout=60s"],
    ]
    ping = [binary("redis-cli"), "-p", str(cluster.redis_port), "ping"]
    cluster.fault("down")
    began = time.perf_counter()
    for command in commands:
        subprocess.run([kubectl(), *command], env=env, check=True, capture_output=True)
    while subprocess.run(ping, capture_output=True, text=True).stdout.strip() != "PONG":
        assert time.perf_counter() - began < PONG_WITHIN_S, "redis-cli never got PONG"
        time.sleep(0.05)
    return time.perf_counter() - began


def kubectl_role(path: Path) -> Path:
    """The shipped Role plus `list statefulsets`: kubectl rollout status lists the
    StatefulSet (field selector metadata.name) before it watches it; the worker never lists."""
    role = yaml.safe_load(ROLE.read_text())
    role["rules"].append({"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["list"]})
    path.write_text(yaml.safe_dump(role))
    return path


async def workflow_run(bench: Bench, run: int, phases: list[dict[str, float]]) -> float:
    """From the delivery (on a connection already open, as Alertmanager keeps them) to the
    workflow's verified PING."""
    await asyncio.to_thread(bench.cluster.fault, "down")
    began = datetime.now(UTC)
    answer = await bench.http.post("/alerts/alertmanager", json=alert_payload(run))
    answer.raise_for_status()
    handle = bench.env.client.get_workflow_handle(bench.target.workflow_id,
                                                  result_type=IncidentReport)  # fmt: skip
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
        ("wait_ready: watching the rollout, then PING", restarted, verified_at(report)),
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


@dataclass(frozen=True)
class Bench:
    """What every measurement uses: Temporal, the sandbox, the webhook's client, the target,
    and the HOME kubectl keeps its discovery cache in."""

    env: WorkflowEnvironment
    cluster: SandboxCluster
    http: httpx.AsyncClient
    target: RedisTarget
    home: Path


async def one_run(bench: Bench, run: int, times: dict[str, list[float]],
                  phases: list[dict[str, float]]) -> None:  # fmt: skip
    """The workflow and both baselines, one after the other, each from a killed Redis."""
    measures: dict[str, Callable[[], Awaitable[float]]] = {
        "workflow": lambda: workflow_run(bench, run, phases),
        "plain": lambda: asyncio.to_thread(plain_script, bench.cluster, bench.target, run),
        "kubectl": lambda: asyncio.to_thread(literal_kubectl, bench.cluster, bench.home),
    }
    for name, measure in measures.items():
        times[name].append(await measure())
        await asyncio.to_thread(bench.cluster.fault, "clear")  # so the next "down" applies
    print(f"run {run}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))


async def main(runs: int) -> int:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", [Path(sys.executable).parent]),
        data_converter=pydantic_data_converter,
    )
    times: dict[str, list[float]] = {"workflow": [], "plain": [], "kubectl": []}
    phases: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "home").mkdir()
        role = kubectl_role(folder / "role.yaml")
        with SandboxCluster(folder / "sandbox", role_file=role) as cluster:
            target = RedisTarget(redis_url=cluster.redis_url, namespace=NS, statefulset="redis",
                                 api_deployment="treebeard-api")  # fmt: skip
            settings = bench_settings(cluster, env.client.service_client.config.target_host)
            server, port = serve(settings)
            async with (
                env,
                running_worker(env.client, settings),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
            ):
                bench = Bench(env, cluster, http, target, folder / "home")
                for run in range(runs):
                    await one_run(bench, run, times, phases)
            server.should_exit = True
    return report(times, phases)


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(0.95 * len(values)) - 1)]


def report(times: dict[str, list[float]], phases: list[dict[str, float]]) -> int:
    flow, plain, literal = (statistics.median(times[k]) for k in ("workflow", "plain", "kubectl"))
    vs_literal, vs_plain = flow / literal, flow / plain
    ok = vs_literal <= 1.0 and vs_plain <= 1.1
    text = "\n".join([
        "### Time to mitigate a killed Redis: `python -m bench.mitigation`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}: sandbox cluster "
        f"(real redis-server pod), Temporal dev server, one worker, the webhook; "
        f"{len(times['workflow'])} runs of each, alternating. Workflow: Alertmanager delivery "
        "-> incident -> triage (Redis and Kubernetes) -> restart -> wait_ready, whose end is the "
        "verified PING (its step's finish time in the report; the report and notifications "
        "follow). Literal kubectl: the runbook's commands in a shell with the real kubectl "
        "(`rollout restart`, `rollout status`, `wait --for=condition=ready pod/redis-0`, then "
        "`redis-cli ping` until PONG; discovery cache warm after the first run). Plain calls: "
        "the workflow's own calls on that path from a script (diagnose_redis and "
        "inspect_kubernetes at once, restart, wait_ready): what is left is the orchestration. "
        "All with the worker's credentials (the shipped Role plus `list statefulsets` for "
        "kubectl); the delivery goes over an open connection.",
        "",
        "| | median | p95 |",
        "|---|---|---|",
        f"| workflow, from the delivery | {flow:.2f} s | {p95(times['workflow']):.2f} s |",
        f"| literal kubectl | {literal:.2f} s | {p95(times['kubectl']):.2f} s |",
        f"| plain calls | {plain:.2f} s | {p95(times['plain']):.2f} s |",
        "",
        "| ratio of medians | measured | target |",
        "|---|---|---|",
        f"| workflow / literal kubectl | {vs_literal:.2f} | <= 1.0 |",
        f"| workflow / plain calls | {vs_plain:.2f} | <= 1.1 |",
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
