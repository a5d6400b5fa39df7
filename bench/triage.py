"""Triage cost: diagnose_redis + classify against a local redis-server, as the workflow's first
step runs it. Target: median under 20 ms. `python -m bench.triage [--runs N]`; prints the
figures and rewrites its section of bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from activities.policy import Thresholds
from activities.redis.diagnosis import diagnose
from activities.targets import RedisAccess
from bench.results import machine, write_section
from contracts.diagnosis import Scenario
from contracts.target import RedisTarget
from sandbox import faults
from sandbox.processes import RedisProcess
from workflows.runbook.classify import classify

TARGET_MEDIAN_MS = 20.0


async def measure(url: str, runs: int) -> tuple[list[float], Scenario]:
    target, access, thresholds = RedisTarget(redis_url=url), RedisAccess(), Thresholds()
    timings, scenario = [], Scenario.HEALTHY
    for _ in range(runs):
        began = time.perf_counter()
        scenario = classify(await diagnose(target, access, thresholds.ping_samples), thresholds)
        timings.append((time.perf_counter() - began) * 1000)
    return timings, scenario


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(runs: int) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in (
            ("healthy, 10k keys", {}),
            ("out of memory", {"maxmemory": "4mb", "maxmemory-policy": "noeviction"}),
        ):
            server = RedisProcess(Path(tmp) / name.replace(" ", "-"), config).start()
            try:
                client = server.client()
                if config:
                    faults.fill_memory(client)
                else:
                    client.mset({f"cache:item:{i}": "x" * 100 for i in range(10_000)})
                timings, scenario = await measure(server.url, runs)
            finally:
                server.kill()
            rows.append((name, scenario, timings))
    ok = all(statistics.median(t) < TARGET_MEDIAN_MS for _, _, t in rows)
    lines = [
        "### Triage cost: `python -m bench.triage`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}: `diagnose_redis` "
        f"(5 PINGs, INFO twice, SLOWLOG GET 128, DBSIZE on one new connection) + `classify`, "
        f"{runs} runs each against a local redis-server. Target: median under "
        f"{TARGET_MEDIAN_MS:g} ms.",
        "",
        "| Redis | classified | median | p99 | max |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {scenario.value} | {statistics.median(t):.2f} ms | "
            f"{quantile(t, 0.99):.2f} ms | {max(t):.2f} ms |"
            for name, scenario, t in rows
        ],
        "",
        f"Verdict: {'PASS' if ok else 'MISS'}",
    ]
    text = "\n".join(lines)
    print(text)
    write_section("triage", "default", text)
    return 0 if ok else 1


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triage", description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    return asyncio.run(main(parser.parse_args().runs))


if __name__ == "__main__":
    raise SystemExit(cli())
