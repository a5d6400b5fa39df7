"""`make demo`: the whole local system on this machine, a failure injected, the incident run.

It starts the sandbox cluster (a Kubernetes API whose Redis pod is a real redis-server) with
application traffic, a Temporal dev server with its Web UI (history kept in .runbook/), `runbook
worker`, `runbook webhook`, and, where installed, redis_exporter, Prometheus and Alertmanager
with the shipped rules and receiver. It injects the scenario's failure; the alert reaches the
webhook, which opens the incident; the demo follows it live, stops at each approval with the
three ways to give it, and prints the review. Ctrl-C stops every process it started.

`make demo SCENARIO=list` lists the scenarios; `ARGS=--exit-when-done` exits after the review
(0 when the incident was resolved or mitigated).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from contracts.incident import IncidentReport
from contracts.target import RedisTarget
from demo import failover
from demo.alerts import AlertPath, alert_path
from demo.incident import end_leftover, follow_incident, latest_run, wait_for_new_run
from demo.recovery import RecoveryNotes
from demo.scenarios import DEFAULT, SCENARIOS, DemoScenario, listing
from demo.stack import (
    STATE,
    DemoFailure,
    Processes,
    Stack,
    port_or_free,
    start_runbook,
    start_temporal,
)
from sandbox.cache_traffic import CacheTraffic, warm_catalog
from sandbox.cluster import SandboxCluster
from sandbox.processes import MissingBinary, kubectl
from worker.cli.render import render_report
from worker.client import connect
from worker.settings.runbook import TemporalSettings

ROLE = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "rbac" / "role.yaml"
GOOD_OUTCOMES = ("resolved", "mitigated")


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scenario", default=DEFAULT, help="a scenario, or `list` to list them")
    parser.add_argument("--exit-when-done", action="store_true", help="exit after the review")
    parser.add_argument("--approve-as", metavar="NAME", help="approve every step as NAME")
    parser.add_argument("--ui-port", type=int, default=0, help="Web UI port (default 8233)")
    parser.add_argument(
        "--post-alert", action="store_true", help="post the alert instead of running Prometheus"
    )
    return parser


def incident_id(cluster: SandboxCluster) -> str:
    """The id the webhook gives the sandbox Redis's incident."""
    names = cluster.names
    return RedisTarget(
        redis_url=cluster.redis_url, namespace=names.namespace, statefulset=names.statefulset
    ).workflow_id


@contextmanager
def sandbox_cluster(scenario: DemoScenario) -> Iterator[SandboxCluster]:
    root = STATE / "sandbox"
    shutil.rmtree(root, ignore_errors=True)  # Redis starts empty, not with an old run's data
    options = failover.cluster_options(STATE) if scenario.sentinel else {"role_file": ROLE}
    with SandboxCluster(root, api_traffic=1.0, **options) as cluster:
        _say(f"sandbox cluster on {cluster.url}: StatefulSet redis, Redis at {cluster.redis_url}")
        for pod in sorted(
            p for ns, p in cluster.controller.runtimes if ns == cluster.names.namespace
        ):
            pid = cluster.controller.runtime(cluster.names.namespace, pod).process.pid
            _say(f"started redis-server (pid {pid}), the pod {pod}")
        if cluster.sentinels is not None:
            _say(f"three Sentinels ({', '.join(cluster.sentinel_addresses)}) watch master "
                 f"{cluster.sentinel_master_name}, quorum 2, down-after "
                 f"{failover.DOWN_AFTER_MS} ms")  # fmt: skip
        for line in follow_with_kubectl(cluster):
            _say(line)
        yield cluster


def follow_with_kubectl(cluster: SandboxCluster) -> list[str]:
    """The runbook's own commands, for a person to follow along with a real kubectl."""
    tool = kubectl()
    ns = cluster.names.namespace
    return [
        f"follow it with kubectl: export KUBECONFIG={cluster.kubeconfig}",
        f"  {tool} get pods -n {ns} -w",
        f"  {tool} logs statefulset/redis -n {ns} --tail=20",
        f"  {tool} logs deployment/treebeard-api -n {ns} --tail=20 | grep -i redis",
        f"  {tool} exec deployment/treebeard-api -n {ns} -- redis-cli -h redis ping",
        f"  {tool} describe statefulset redis -n {ns}",
        f"  {tool} get jobs -n {ns}   # the warm step's Job, once a warm step ran one",
        f"  KUBECONFIG={cluster.runbook_kubeconfig} {tool} auth can-i patch "
        "statefulsets/redis   # what the worker may do",
    ]


async def run_incident(
    stack: Stack,
    cluster: SandboxCluster,
    scenario: DemoScenario,
    alerts: AlertPath,
    processes: Processes,
    approve_as: str | None,
) -> IncidentReport:
    """Inject the fault, let the alert open the incident, follow it to its review."""
    client = await connect(TemporalSettings(address=stack.address))
    workflow_id = incident_id(cluster)
    latest = await latest_run(client, workflow_id)
    await asyncio.to_thread(alerts.before_fault)
    _say(f"injecting the fault: {scenario.name} ({scenario.story})")
    await asyncio.to_thread(cluster.fault, scenario.fault)
    await asyncio.to_thread(alerts.after_fault, scenario)
    run_id = await wait_for_new_run(
        client, workflow_id, latest[0] if latest else None, processes, within=120
    )
    _say(f"the alert opened incident {workflow_id}: {stack.link(workflow_id, run_id)}")
    notes = RecoveryNotes(cluster)
    report = await follow_incident(client, stack, workflow_id, run_id, processes, approve_as, notes)
    print(f"\n{render_report(report)}\n", flush=True)
    for line in await asyncio.to_thread(failover.after_lines, cluster):
        _say(line)
    _say(f"outcome: {report.outcome}. Web UI: {stack.link(workflow_id, run_id)}")
    return report


def run(resources: ExitStack, scenario: DemoScenario, args: argparse.Namespace) -> int:
    """Start everything (each piece registered in `resources` to be stopped), run the story."""
    cluster = resources.enter_context(sandbox_cluster(scenario))
    processes = Processes(_say)
    resources.callback(processes.stop_all)
    ui_port = args.ui_port or port_or_free(8233)
    address = start_temporal(processes, ui_port)
    _say(f"Temporal dev server on {address}, Web UI on http://127.0.0.1:{ui_port}")
    asyncio.run(end_leftover(address, incident_id(cluster), _say))
    stack = start_runbook(processes, cluster, address, ui_port)
    _say(f"webhook on {stack.webhook_url} (bearer token in {stack.token_file})")
    warm_catalog(cluster.redis(), critical_only=False)
    reads = scenario.reads_per_s
    if not scenario.sentinel:  # the API's own requests, through redis-master, follow a failover
        resources.enter_context(CacheTraffic(cluster.redis_port, reads, max_seconds=3600))
        _say(f"application traffic reads the cache (cache-aside) all along, {reads:g} reads/s")
    alerts = resources.enter_context(
        alert_path(stack, cluster, processes, _say, post=args.post_alert)
    )
    report = asyncio.run(run_incident(stack, cluster, scenario, alerts, processes, args.approve_as))
    if not args.exit_when_done:
        _say(f"browse {stack.ui_url}; try `{stack.runbook()} list --all`")
        _say("Ctrl-C stops everything")
        signal.pause()
    return 0 if report.outcome in GOOD_OUTCOMES else 1


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.scenario == "list":
        print(listing())
        return 0
    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        print(f"error: no scenario {args.scenario!r}. Fix: one of these\n{listing()}",
              file=sys.stderr)  # fmt: skip
        return 2
    STATE.mkdir(exist_ok=True)
    # Ctrl-C even when started with SIGINT ignored (from a script, in the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    resources = ExitStack()
    code = 0
    try:
        code = run(resources, scenario, args)
    except KeyboardInterrupt:
        print()
    except (DemoFailure, MissingBinary, TimeoutError, RuntimeError) as err:
        print(f"demo: error: {err}\n  (logs in {STATE.resolve()})", file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        resources.close()
    _say("stopped every process it started")
    return code


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core's native threads can abort a normal interpreter shutdown.
    os._exit(exit_code)
