"""`make demo`: the whole local stack on this machine, a failure injected, the incident fixed.

A Temporal dev server with its Web UI (persisted under .runbook/), the sandbox cluster (a
Kubernetes API whose Redis pod is a real redis-server), application traffic reading the cache,
the `runbook worker` process, and an auto-mode incident. Scenarios:
  down  Redis killed: restarted and verified without a person (the default)
  oom   Redis OOMKilled and full: the incident stops at each approval and says how to give it
Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from temporalio.common import WorkflowIDConflictPolicy

from activities.models import (
    Decision,
    Incident,
    IncidentReport,
    IncidentStatus,
    Mode,
    PendingApproval,
    RedisTarget,
    StepName,
)
from sandbox.cache_traffic import CacheTraffic
from sandbox.cluster import SandboxCluster
from sandbox.processes import binary, free_port, stop_process, wait_for_port
from worker.cli_start import workflow_id_for
from worker.client import connect
from worker.render import render_report
from worker.settings import TemporalSettings

STATE = Path(".runbook")
# The worker's configuration for the demo: the application's warmer, and a short watch.
DEMO_CONFIG = """\
kubernetes: {{kubeconfig: "{kubeconfig}"}}
warmers:
  - {{name: catalog, kind: callable, target: "sandbox.cache_traffic:warm_catalog"}}
recovery: {{watch_interval: 1s, watch_deadline: 60s}}
outage: {{ready_timeout: 60s, poll: 1s}}
notifications:
  channels: [{{name: log, kind: log}}]
"""
ROLE = Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "rbac" / "role.yaml"
SCENARIOS = {"down": "down", "oom": "oom"}
VENV_BIN = [Path(sys.executable).parent]


def _log(message: str) -> None:
    print(f"demo: {message}", flush=True)


@contextmanager
def temporal_dev_server(ui_port: int) -> Iterator[str]:
    port = free_port()
    log = (STATE / "temporal.log").open("ab")
    args = [binary("temporal", VENV_BIN), "server", "start-dev", "--ip", "127.0.0.1"]
    args += ["--port", str(port), "--ui-port", str(ui_port)]
    args += ["--db-filename", str((STATE / "temporal.db").resolve()), "--log-level", "error"]
    proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for_port(port, timeout=60, proc=proc)
        wait_for_port(ui_port, timeout=60, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


@contextmanager
def worker_process(address: str, kubeconfig: Path) -> Iterator[subprocess.Popen[bytes]]:
    config = STATE / "runbook.yaml"
    config.write_text(DEMO_CONFIG.format(kubeconfig=kubeconfig))
    env = dict(os.environ, TEMPORAL_ADDRESS=address, RUNBOOK_CONFIG=str(config.resolve()))
    log = (STATE / "worker.log").open("ab")
    runbook = binary("runbook", VENV_BIN)
    proc = subprocess.Popen(
        [runbook, "worker"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def sandbox_cluster() -> Iterator[SandboxCluster]:
    with SandboxCluster(STATE / "sandbox", role_file=ROLE) as cluster:
        _log(f"sandbox cluster on {cluster.url}: StatefulSet redis, Redis at {cluster.redis_url}")
        yield cluster


@dataclass(frozen=True)
class Stack:
    address: str
    ui_port: int
    redis_url: str

    def link(self, workflow_id: str, run_id: str | None) -> str:
        path = f"{quote(workflow_id, safe='')}/{run_id}/history"
        return f"http://127.0.0.1:{self.ui_port}/namespaces/default/workflows/{path}"


def _how_to_decide(stack: Stack, workflow_id: str, run_id: str | None, p: PendingApproval) -> None:
    runbook = f"TEMPORAL_ADDRESS={stack.address} {binary('runbook', VENV_BIN)}"
    payload = json.dumps({"step": p.step.value, "approver": "YOUR-NAME", "decision": "approve"})
    signal_payload = json.dumps({"step": p.step.value, "approver": "YOUR-NAME"})
    print(
        f"""
  >>> {p.step.value} waits for approval: {p.action}
      because {p.reason}
      approve it in one of these ways:
      1. Web UI: {stack.link(workflow_id, run_id)}
         "Send an Update" -> name: decide, input: {payload}
         (or "Send a Signal" -> name: approve, input: {signal_payload})
      2. Terminal: {runbook} approve {shlex.quote(workflow_id)} {p.step.value} --as YOUR-NAME
""",
        flush=True,
    )


async def run_incident(stack: Stack, approve_as: str | None) -> IncidentReport:
    """Start the auto-mode incident and narrate it: the plan, each approval it waits for."""
    client = await connect(TemporalSettings(address=stack.address))
    incident = Incident(
        target=RedisTarget(
            redis_url=stack.redis_url,
            namespace="treebeard-production",
            statefulset="redis",
            api_deployment="treebeard-api",
        ),
        mode=Mode.AUTO,
        requested_by="make-demo",
    )
    handle = await client.start_workflow(
        "RedisCacheFailure",
        incident,
        id=workflow_id_for(incident, None),
        task_queue="runbooks",
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
        result_type=IncidentReport,
    )
    _log(f"started incident {handle.id} in auto mode")
    result = asyncio.ensure_future(handle.result())
    announced: set[StepName] = set()
    while not result.done():
        status = await handle.query("status", result_type=IncidentStatus)
        for pending in status.pending_approvals:
            if pending.step in announced:
                continue
            announced.add(pending.step)
            _how_to_decide(stack, handle.id, handle.result_run_id, pending)
            if approve_as:
                decision = Decision(step=pending.step, approver=approve_as, comment="demo")
                _log(await handle.execute_update("decide", decision, result_type=str))
            else:
                _log("waiting for you (Ctrl-C stops everything)")
        await asyncio.wait([result], timeout=0.5)
    report: IncidentReport = result.result()
    print()
    print(render_report(report))
    print()
    _log(f"outcome: {report.outcome}. Web UI: {stack.link(handle.id, handle.result_run_id)}")
    return report


def _stop(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="down")
    parser.add_argument("--exit-when-done", action="store_true", help="stop after the report")
    parser.add_argument("--approve-as", metavar="NAME", help="approve every step as NAME")
    parser.add_argument("--ui-port", type=int, default=0, help="Web UI port (default: free)")
    args = parser.parse_args(argv)
    STATE.mkdir(exist_ok=True)
    ui_port = args.ui_port or free_port()
    signal.signal(signal.SIGTERM, _stop)
    try:
        with sandbox_cluster() as cluster, temporal_dev_server(ui_port) as address:
            _log(f"Temporal dev server on {address}, Web UI on http://127.0.0.1:{ui_port}")
            stack = Stack(address=address, ui_port=ui_port, redis_url=cluster.redis_url)
            with (
                worker_process(address, cluster.runbook_kubeconfig),
                CacheTraffic(cluster.redis_port, max_seconds=3600),
            ):
                _log("application traffic reads the cache (cache-aside) all along")
                _log(f"injecting the fault: {args.scenario}")
                cluster.fault(SCENARIOS[args.scenario])
                asyncio.run(run_incident(stack, args.approve_as))
                if not args.exit_when_done:
                    _log("browse the UI; Ctrl-C stops everything")
                    signal.pause()
    except KeyboardInterrupt:
        print()
    _log("stopped every process it started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
