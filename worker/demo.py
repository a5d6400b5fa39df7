"""`make demo`: the whole local stack on this machine, then a dry-run incident.

A Temporal dev server with its Web UI (persisted under .runbook/), a real redis-server driven
out of memory, the `runbook worker` process, and a dry run that prints the diagnosis, the plan
and the link to the incident in the UI. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sandbox import faults
from sandbox.processes import RedisProcess, binary, free_port, stop_process, wait_for_port
from worker.cli import workflow_id_for
from worker.client import connect
from worker.render import render_report
from worker.settings import TemporalSettings

STATE = Path(".runbook")
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
def worker_process(address: str) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, TEMPORAL_ADDRESS=address)
    env.pop("RUNBOOK_CONFIG", None)
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
def out_of_memory_redis() -> Iterator[RedisProcess]:
    server = RedisProcess(STATE / "redis", {"maxmemory": "4mb", "maxmemory-policy": "noeviction"})
    server.start()
    try:
        keys = faults.fill_memory(server.client())
        _log(f"redis-server on {server.url} filled with {keys} keys until it refused writes (OOM)")
        yield server
    finally:
        server.stop()


async def run_incident(address: str, redis_url: str, ui_port: int) -> None:
    from activities.models import Incident, IncidentReport, Mode, RedisTarget

    client = await connect(TemporalSettings(address=address))
    incident = Incident(
        target=RedisTarget(
            redis_url=redis_url,
            namespace="treebeard-production",
            statefulset="redis",
            api_deployment="treebeard-api",
        ),
        mode=Mode.DRY_RUN,
        requested_by="make-demo",
    )
    workflow_id = workflow_id_for(incident, None)
    handle = await client.start_workflow(
        "RedisCacheFailure",
        incident,
        id=workflow_id,
        task_queue="runbooks",
        result_type=IncidentReport,
    )
    _log(f"started dry-run incident {workflow_id}")
    report = await handle.result()
    print()
    print(render_report(report))
    print()
    path = f"{quote(workflow_id, safe='')}/{handle.result_run_id}/history"
    link = f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{path}"
    _log(f"Web UI: {link}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--exit-when-done", action="store_true", help="stop after the report")
    parser.add_argument("--ui-port", type=int, default=0, help="Web UI port (default: free)")
    args = parser.parse_args(argv)
    STATE.mkdir(exist_ok=True)
    ui_port = args.ui_port or free_port()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with out_of_memory_redis() as redis_proc, temporal_dev_server(ui_port) as address:
            _log(f"Temporal dev server on {address}, Web UI on http://127.0.0.1:{ui_port}")
            with worker_process(address):
                asyncio.run(run_incident(address, redis_proc.url, ui_port))
                if not args.exit_when_done:
                    _log("browse the UI; press Ctrl-C to stop everything")
                    signal.pause()
    except KeyboardInterrupt:
        print()
    _log("stopped every process it started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
