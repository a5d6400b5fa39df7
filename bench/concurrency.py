"""100 Redis targets failing at once, one worker: how long until every incident is triaged and
planned, and the worker's peak memory. Targets: all within 10 s, worker under 300 MB.
`python -m bench.concurrency [--targets N]`; prints the figures and rewrites its section of
bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.results import machine, write_section
from contracts.diagnosis import Scenario
from contracts.incident import Incident, IncidentReport, Mode
from contracts.target import RedisTarget
from sandbox import faults
from sandbox.processes import RedisProcess, binary, stop_process

VENV_BIN = [Path(sys.executable).parent]
TARGET_SECONDS, TARGET_MB = 10.0, 300.0


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def failing_servers(root: Path, count: int) -> list[RedisProcess]:
    """Half killed (redis_down), half full with noeviction (out_of_memory)."""
    servers = []
    for i in range(count):
        oom = i % 2 == 1
        config = {"maxmemory": "2mb", "maxmemory-policy": "noeviction"} if oom else {}
        server = RedisProcess(root / f"r{i}", config).start()
        if oom:
            faults.fill_memory(server.client(), batch=100)
        else:
            server.kill()
        servers.append(server)
    return servers


def target_of(i: int, server: RedisProcess) -> RedisTarget:
    return RedisTarget(redis_url=server.url, namespace=f"bench-{i}")


def start_worker(
    address: str, queue: str, root: Path, servers: list[RedisProcess]
) -> subprocess.Popen[bytes]:
    """The real `runbook worker` process, so its peak memory is its own, configured for
    every server's target (it acts on configured targets only)."""
    targets = [
        {"name": f"bench-{i}", **target_of(i, s).model_dump(exclude_none=True)}
        for i, s in enumerate(servers)
    ]
    config = root / "runbook.yaml"
    config.write_text(yaml.safe_dump({"targets": targets}))
    env = dict(os.environ, TEMPORAL_ADDRESS=address, RUNBOOK_TEMPORAL__TASK_QUEUE=queue)
    env["RUNBOOK_KUBERNETES__ENABLED"] = "false"
    env["RUNBOOK_CONFIG"] = str(config)
    log = (root / "worker.log").open("wb")
    return subprocess.Popen(
        [binary("runbook", VENV_BIN), "worker"], env=env, stdout=log, stderr=log
    )


async def run(count: int) -> int:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", VENV_BIN),
        data_converter=pydantic_data_converter,
    )
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        servers = failing_servers(Path(tmp), count)
        address = env.client.service_client.config.target_host
        worker = start_worker(address, queue, Path(tmp), servers)
        try:
            async with env:
                await asyncio.sleep(2)  # the worker connects and polls
                began = time.perf_counter()
                handles = await asyncio.gather(*(
                    env.client.start_workflow(
                        "RedisCacheFailure",
                        Incident(target=target_of(i, s), mode=Mode.DRY_RUN,
                                 requested_by="bench"),
                        id=f"bench/{queue}/{i}", task_queue=queue, result_type=IncidentReport,
                    )
                    for i, s in enumerate(servers)
                ))  # fmt: skip
                reports = await asyncio.gather(*(h.result() for h in handles))
                seconds = time.perf_counter() - began
                memory = peak_mb(worker.pid)
        finally:
            stop_process(worker)
            for server in servers:
                server.kill()
    scenarios = {s: sum(r.scenario is s for r in reports) for s in Scenario}
    ok = seconds <= TARGET_SECONDS and memory <= TARGET_MB and len(reports) == count
    text = "\n".join([
        "### Concurrency: `python -m bench.concurrency`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}: {count} real "
        f"redis-servers failing at once (half killed, half out of memory), one `runbook worker` "
        f"process, {count} dry-run incidents started together on a Temporal dev server.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| all triaged and planned | {seconds:.2f} s | <= {TARGET_SECONDS:g} s |",
        f"| worker peak memory (VmHWM) | {memory:.0f} MB | <= {TARGET_MB:g} MB |",
        f"| redis_down / out_of_memory | {scenarios[Scenario.REDIS_DOWN]} / "
        f"{scenarios[Scenario.OUT_OF_MEMORY]} | {count // 2} / {count - count // 2} |",
        "",
        f"Verdict: {'PASS' if ok else 'MISS'}",
    ])  # fmt: skip
    print(text)
    write_section("concurrency", "default", text)
    return 0 if ok else 1


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__)
    parser.add_argument("--targets", type=int, default=100)
    return asyncio.run(run(parser.parse_args().targets))


if __name__ == "__main__":
    raise SystemExit(cli())
