"""`python -m sandbox up|fault|status`: the local cluster for the demo and for trying things.

python -m sandbox up [--dir .sandbox] [--json] [--sentinel]   # until Ctrl-C; stops everything
python -m sandbox fault down|crashloop|oom|full|connections|slow|pvc-unbound|cut-off|clear
python -m sandbox fault master-down|no-quorum|replica-cut-off     # the --sentinel topology's
python -m sandbox status
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import yaml
from kubernetes import client, config

from sandbox.cluster import SandboxCluster
from sandbox.kube.faults import Fault, set_fault
from sandbox.manifests import FAULT_ANNOTATION, SandboxNames

DEFAULT_DIR = Path(".sandbox")
# The worker's Role as shipped: `kubectl auth can-i` under kubeconfig-runbook shows what it may do.
SHIPPED_ROLE = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "rbac" / "role.yaml"


def _up(args: argparse.Namespace) -> int:
    root: Path = args.dir
    for state in ("pods", "sentinels"):  # a fresh cluster: no data of a past run
        shutil.rmtree(root / state, ignore_errors=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = SandboxCluster(root, role_file=args.role, api_traffic=1.0, sentinel=args.sentinel)
    try:
        cluster.start()
        if args.json:
            print(json.dumps(cluster.describe()), flush=True)
        else:
            info = cluster.describe()
            print(f"sandbox cluster up at {cluster.url} (namespace {info['namespace']})")
            print(f"  kubeconfig: {info['kubeconfig']}   (export KUBECONFIG={info['kubeconfig']})")
            if args.role is not None:
                print(f"  the worker's: {cluster.runbook_kubeconfig} (held to {args.role})")
            print(f"  redis:      {info['redis_url']}")
            if args.sentinel:
                print(f"  sentinels:  {info['sentinels']} (master name {info['master_name']})")
            faults = "|".join(f.value for f in Fault)
            print(f"  faults:     python -m sandbox fault {faults}")
            print("Ctrl-C stops the cluster and every redis-server it started.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        cluster.stop()
    return 0


def _kubeconfig(args: argparse.Namespace) -> Path:
    """The sandbox's own kubeconfig: never KUBECONFIG, which may name a real cluster."""
    path: Path = args.kubeconfig or args.dir / "kubeconfig"
    if not path.exists():
        raise SystemExit(f"error: {path} not found: start the sandbox with `python -m sandbox up`")
    server = yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"]
    if urlsplit(server).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"error: {path} points at {server}, not a local sandbox: refusing")
    return path


def _api(args: argparse.Namespace) -> client.ApiClient:
    path = str(_kubeconfig(args))
    api: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    return api


def _fault(args: argparse.Namespace) -> int:
    names = SandboxNames()
    with _api(args) as api:
        set_fault(api, args.namespace or names.namespace, names.statefulset, Fault(args.fault))
    print(f"fault {args.fault} set on statefulset {names.statefulset}")
    return 0


def _status(args: argparse.Namespace) -> int:
    names = SandboxNames()
    namespace = args.namespace or names.namespace
    with _api(args) as api:
        sts = client.AppsV1Api(api).read_namespaced_stateful_set(names.statefulset, namespace)
        pods = client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"app={names.statefulset}"
        )
    annotations = (sts.metadata.annotations if sts.metadata else None) or {}
    status = sts.status
    print(f"fault: {annotations.get(FAULT_ANNOTATION, 'none')}")
    if status is not None:
        print(
            f"statefulset {names.statefulset}: {status.ready_replicas or 0}/{status.replicas} "
            f"ready, revision {status.current_revision} -> {status.update_revision}"
        )
    for pod in pods.items:
        name = pod.metadata.name if pod.metadata else "?"
        for cs in (pod.status.container_statuses if pod.status else None) or []:
            print(f"  {name}/{cs.name}: ready={cs.ready} restarts={cs.restart_count}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    top.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state dir (default .sandbox)")
    sub = top.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the cluster until Ctrl-C")
    up.add_argument("--json", action="store_true", help="print one JSON line once ready")
    up.add_argument(
        "--sentinel",
        action="store_true",
        help="three Redis pods replicating under three Sentinels (master name mymaster)",
    )
    up.add_argument(
        "--role",
        type=Path,
        default=SHIPPED_ROLE,
        help="kubeconfig-runbook is held to this Role (default: the shipped one)",
    )
    commands = [up]
    for name, helptext in (("fault", "inject a fault"), ("status", "show Redis pods")):
        cmd = sub.add_parser(name, help=helptext)
        if name == "fault":
            cmd.add_argument("fault", choices=[f.value for f in Fault])
        cmd.add_argument("--kubeconfig", type=Path, help="default: <dir>/kubeconfig")
        cmd.add_argument("--namespace")
        commands.append(cmd)
    for cmd in commands:  # --dir is accepted after the command too
        cmd.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {"up": _up, "fault": _fault, "status": _status}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
