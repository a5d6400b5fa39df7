"""Alert storm benchmark: 5,000 Alertmanager deliveries across 50 targets, 90% of them repeats,
from 50 concurrent senders, against the real Temporal dev server, a real `runbook webhook`
process and, afterwards, a real worker.

    .venv/bin/python -m bench.alert_storm [--deliveries 5000] [--targets 50] [--senders 50]

How "one workflow per target" is kept honest: the webhook starts incidents on a task queue no
worker polls during the storm, so each incident stays open for the whole storm (a dry run
finishes in well under a second, after which a new firing alert would rightly open a second
incident). When the storm is over the benchmark counts the workflows on that task queue in
Temporal's visibility (must be exactly one per target), counts the `alert` signals in each
history (each distinct (fingerprint, status) must arrive exactly once), then starts a worker,
lets every incident run its dry run and reads the alerts back from each report.

Prints the figures and rewrites its own section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.results import machine, write_section
from contracts.incident import IncidentReport
from sandbox.processes import RedisProcess, binary, free_port, stop_process, wait_for_port
from worker.runner import build_worker
from worker.settings.runbook import Settings, TargetRoute, TemporalSettings

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "bench-" + uuid.uuid4().hex
REQUEST_METRIC = "runbook_webhook_request_duration_seconds"
TEMPORAL_METRIC = "runbook_webhook_temporal_call_duration_seconds"
ALERT_NAMES = ["RedisDown", "RedisMemoryHigh", "RedisTooManyConnections", "RedisSlow", "RedisLag"]


ORDERS = {
    "interleaved": "each group's states in order with their repeats, the groups interleaved at "
    "random, as independent Alertmanager groups are",
    "lockstep": "worst case: all 50 groups change state at the same instant, ten times",
}


@dataclass
class Figures:
    deliveries: int
    seconds: float
    latencies_ms: list[float]
    recorded_ms: list[float]  # deliveries that carried something new: a Temporal round trip
    statuses: dict[int, int]


def group_deliveries(ns: str) -> tuple[list[bytes], set[tuple[str, str]]]:
    """One Alertmanager group as it evolves: five alerts start firing one by one, then resolve
    one by one (ten distinct deliveries, ten distinct (fingerprint, status) pairs)."""

    def alert(name: str, status: str) -> dict[str, Any]:
        return {
            "status": status,
            "labels": {"alertname": name, "namespace": ns, "pod": "redis-0", "severity": "page"},
            "annotations": {"summary": f"{name} on {ns}/redis"},
            "startsAt": "2026-11-26T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T10:30:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"{ns}-{name}",
        }

    states = [["firing"] * (i + 1) for i in range(len(ALERT_NAMES))]
    states += [["resolved"] * (i + 1) + ["firing"] * (4 - i) for i in range(len(ALERT_NAMES))]
    bodies, pairs = [], set()
    for row in states:
        alerts = [alert(n, s) for n, s in zip(ALERT_NAMES, row, strict=False)]
        pairs |= {(a["fingerprint"], a["status"]) for a in alerts}
        body = {
            "receiver": "redis-runbook",
            "status": "firing" if "firing" in row else "resolved",
            "alerts": alerts,
            "groupLabels": {"namespace": ns},
            "commonLabels": {"namespace": ns, "pod": "redis-0", "severity": "page"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{namespace="{ns}"}}',
            "truncatedAlerts": 0,
        }
        bodies.append(json.dumps(body).encode())
    return bodies, pairs


def build_queue(
    port: int, per_target: list[list[bytes]], repeats: int, order: str, rng: random.Random
) -> list[bytes]:
    """The send order. `interleaved`: each group evolves on its own clock (its states in order,
    each state followed by its repeats), the 50 groups randomly interleaved, as independent
    Alertmanager groups are. `lockstep`: the worst case, every group changes state at the same
    instant, so each round opens with 50 concurrent Temporal writes."""
    if order == "lockstep":
        queue: list[bytes] = []
        for step in range(len(per_target[0])):
            batch = [request_bytes(port, bodies[step]) for bodies in per_target] * repeats
            rng.shuffle(batch)
            queue += batch
        return queue
    streams = [
        [request_bytes(port, b) for b in bodies for _ in range(repeats)] for bodies in per_target
    ]
    lanes = [i for i, stream in enumerate(streams) for _ in stream]
    rng.shuffle(lanes)
    cursors = [0] * len(streams)
    queue = []
    for lane in lanes:
        queue.append(streams[lane][cursors[lane]])
        cursors[lane] += 1
    return queue


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /alerts/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"User-Agent: Alertmanager/0.28.1\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Schedule:
    """Hands out deliveries in order. Unpaced, a sender takes the next as soon as it is free
    (closed loop: as fast as the webhook answers). Paced at `rate`, delivery i is due at
    start + i/rate and its latency counts from then, so a delivery that waited for a free
    sender is charged for the wait (no coordinated omission)."""

    def __init__(self, queue: list[bytes], rate: float | None) -> None:
        self._queue = queue
        self._next = 0
        self._rate = rate
        self.start = time.perf_counter()

    def take(self) -> tuple[bytes, float] | None:
        if self._next >= len(self._queue):
            return None
        index, self._next = self._next, self._next + 1
        due = self.start + index / self._rate if self._rate else 0.0
        return self._queue[index], due


async def sender(
    port: int,
    schedule: Schedule,
    latencies: list[float],
    recorded: list[float],
    statuses: dict[int, int],
) -> None:
    """A keep-alive HTTP/1.1 client, like one Alertmanager notifier: one request at a time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (item := schedule.take()) is not None:
            payload, due = item
            if due:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            began = due or time.perf_counter()
            writer.write(payload)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            latencies.append((time.perf_counter() - began) * 1000)
            if b'"outcome":"recorded"' in answer:
                recorded.append(latencies[-1])
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def storm(port: int, queue: list[bytes], senders: int, rate: float | None) -> Figures:
    latencies: list[float] = []
    recorded: list[float] = []
    statuses: dict[int, int] = {}
    schedule = Schedule(queue, rate)
    await asyncio.gather(
        *(sender(port, schedule, latencies, recorded, statuses) for _ in range(senders))
    )
    elapsed = time.perf_counter() - schedule.start
    return Figures(len(queue), elapsed, latencies, recorded, statuses)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def bucket_quantile(metrics: str, name: str, q: float) -> str:
    """The histogram bucket bound under which a fraction q of the observations fall."""
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value
    if not counts or not counts[float("inf")]:
        return "n/a"
    total = counts[float("inf")]
    bound = next(b for b in sorted(counts) if counts[b] >= q * total)
    return f"<= {bound * 1000:g} ms" if bound != float("inf") else "> 10 s"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


async def count_workflows(client: Client, queue: str, expected: int) -> list[str]:
    ids: list[str] = []
    for _ in range(100):
        ids = [w.id async for w in client.list_workflows(f"TaskQueue = '{queue}'")]
        if len(ids) >= expected:
            await asyncio.sleep(0.5)  # and nothing more arrives
            return [w.id async for w in client.list_workflows(f"TaskQueue = '{queue}'")]
        await asyncio.sleep(0.2)
    return ids


def start_webhook(config: Path, port: int, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    """The real thing: `runbook webhook` in its own process (same code path as the CLI)."""
    command = [sys.executable, "-m", "worker.cli.webhook", "--config", str(config), "webhook"]
    proc = subprocess.Popen([*command, "--port", str(port)], env=environ, cwd=ROOT)
    wait_for_port(port, 30, proc)
    return proc


def write_results(text: str, variant: str) -> None:
    write_section("alert_storm", variant, text)


async def main(args: argparse.Namespace) -> int:
    rounds_needed = 2 * len(ALERT_NAMES)
    repeats = args.deliveries // (args.targets * rounds_needed)
    namespaces = [f"bench-{i:02d}-{uuid.uuid4().hex[:6]}" for i in range(args.targets)]
    task_queue = f"alert-storm-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="alert-storm-"))
    redis = RedisProcess(work / "redis").start()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", [Path(sys.executable).parent]),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
    )
    webhook: subprocess.Popen[bytes] | None = None
    try:
        address = env.client.service_client.config.target_host
        targets = [
            {
                "name": f"{ns}/redis",
                "match": {"namespace": ns, "alertname": "Redis.*"},
                "redis_url": redis.url,
                "namespace": ns,
                "statefulset": "redis",
            }
            for ns in namespaces
        ]
        config = {
            "temporal": {"address": address, "task_queue": task_queue},
            "targets": targets,
            "webhook": {"mode": "dry-run"},
        }
        (work / "runbook.yaml").write_text(json.dumps(config))  # JSON is YAML
        (work / "token").write_text(TOKEN + "\n")
        port = free_port()
        environ = {
            **os.environ,
            "RUNBOOK_WEBHOOK_TOKEN_FILE": str(work / "token"),
            "TEMPORAL_ADDRESS": address,
        }
        webhook = start_webhook(work / "runbook.yaml", port, environ)

        expected: dict[str, set[tuple[str, str]]] = {}
        per_target: list[list[bytes]] = []
        for ns in namespaces:
            bodies, pairs = group_deliveries(ns)
            expected[f"redis-cache-failure/{ns}/redis"] = pairs
            per_target.append(bodies)
        queue = build_queue(port, per_target, repeats, args.order, random.Random(6))
        distinct = args.targets * rounds_needed

        figures = await storm(port, queue, args.senders, args.rate)
        metrics = await asyncio.to_thread(scrape, port)

        client = env.client
        ids = await count_workflows(client, task_queue, args.targets)
        signalled: dict[str, set[tuple[str, str]]] = {}
        signal_count = 0
        for workflow_id in expected:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            events = [
                e
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            ]
            signal_count += len(events)
            signalled[workflow_id] = set()
            for event in events:
                [payload] = event.workflow_execution_signaled_event_attributes.input.payloads
                alert = json.loads(payload.data)
                signalled[workflow_id].add((alert["fingerprint"], alert["status"]))

        settings = Settings(
            temporal=TemporalSettings(address=address, task_queue=task_queue),
            targets=[TargetRoute(**t) for t in targets],
        )
        reports: list[IncidentReport] = []
        with ThreadPoolExecutor(max_workers=16) as executor:
            async with build_worker(client, settings, executor):
                reports = await asyncio.wait_for(
                    asyncio.gather(
                        *(
                            client.get_workflow_handle(w, result_type=IncidentReport).result()
                            for w in expected
                        )
                    ),
                    120,
                )
        recorded = {fp for r in reports for fp in (a.fingerprint for a in r.alerts)}
        wanted = {fp for pairs in expected.values() for fp, _ in pairs}
        pairs_wanted = {p for pairs in expected.values() for p in pairs}
        pairs_signalled = {p for pairs in signalled.values() for p in pairs}
    finally:
        if webhook is not None:
            stop_process(webhook)
        await env.shutdown()
        redis.stop()

    rate = figures.deliveries / figures.seconds
    variant = f"{args.order}-{f'{args.rate:g}ps' if args.rate else 'max'}"
    flags = f"--order {args.order}" + (f" --rate {args.rate:g}" if args.rate else "")
    pacing = (
        f"paced at {args.rate:g} deliveries/s offered (latency counted from each delivery's "
        "due time)"
        if args.rate
        else "closed loop: each sender sends its next delivery as soon as it has an answer"
    )
    p50 = percentile(figures.latencies_ms, 50)
    p99 = percentile(figures.latencies_ms, 99)
    ok = (
        len(ids) == args.targets
        and len(set(ids)) == args.targets
        and recorded == wanted
        and pairs_signalled == pairs_wanted
        and figures.statuses == {200: figures.deliveries}
    )
    lines = [
        f"### Alert storm: `python -m bench.alert_storm {flags}`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, Temporal dev server "
        "(in-memory), `runbook webhook` (uvicorn, one process), senders in a third process, "
        "all on this machine.",
        "",
        f"{figures.deliveries} Alertmanager deliveries across {args.targets} targets "
        f"({distinct} distinct group states, each sent {repeats} times: "
        f"{100 - 100 * distinct // figures.deliveries}% repeats), "
        f"{args.senders} concurrent keep-alive senders, {pacing}; order `{args.order}` "
        f"({ORDERS[args.order]}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| deliveries/s | {rate:,.0f} |",
        f"| latency p50 | {p50:.1f} ms |",
        f"| latency p99 | {p99:.1f} ms |",
        f"| latency max | {max(figures.latencies_ms):.1f} ms |",
        f"| deliveries that carried something new (sent to Temporal) | "
        f"{len(figures.recorded_ms)}: p50 {percentile(figures.recorded_ms, 50):.1f} ms, "
        f"p99 {percentile(figures.recorded_ms, 99):.1f} ms |",
        "| webhook-side: request time p50 / p99 (histogram buckets) | "
        f"{bucket_quantile(metrics, REQUEST_METRIC, 0.5)} / "
        f"{bucket_quantile(metrics, REQUEST_METRIC, 0.99)} |",
        "| webhook-side: one Temporal call p50 / p99 (histogram buckets) | "
        f"{bucket_quantile(metrics, TEMPORAL_METRIC, 0.5)} / "
        f"{bucket_quantile(metrics, TEMPORAL_METRIC, 0.99)} |",
        f"| answers | {', '.join(f'{k}: {v}' for k, v in sorted(figures.statuses.items()))} |",
        f"| workflows on the task queue | {len(ids)} (expected {args.targets}) |",
        f"| `alert` signals in the histories | {signal_count} "
        f"(distinct (fingerprint, status): {len(pairs_wanted)}) |",
        f"| distinct alerts recorded in the reports | {len(recorded)} of {len(wanted)} |",
        f"| verdict | {'PASS' if ok else 'FAIL'} |",
    ]
    text = "\n".join(lines)
    print(text)
    write_results(text, variant)
    return 0 if ok else 1


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--order", choices=["interleaved", "lockstep"], default="interleaved")
    parser.add_argument(
        "--rate",
        type=float,
        help="offer this many deliveries/s (paced); default: as fast as the senders get answers",
    )
    return asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(cli())
