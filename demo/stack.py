"""The demo's own processes: the Temporal dev server with its Web UI, `runbook worker` and
`runbook webhook`. Each runs in a session of its own (a Ctrl-C at the terminal reaches only the
demo, which then stops them in order) and is stopped by PID and process group."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from demo.failover import target_fields
from sandbox.cluster import SandboxCluster
from sandbox.processes import Daemon, binary, free_port, wait_for_port

STATE = Path(".runbook")
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "runbook.yaml"
JOB_POLL_S = 0.2  # the demo looks at its warm Job more often than the shipped 1 s
VENV_BIN = [Path(sys.executable).parent]
SLACK_URL_ENV = "RUNBOOK_SLACK_WEBHOOK_URL"  # the name runbook.example.yaml uses


class DemoFailure(Exception):
    """Something the demo needs did not happen: the message says what, and where to look."""


class Processes:
    """Every process the demo runs, announced with its PID; stopped newest first."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.owned: list[Daemon] = []
        self.watched: list[Daemon] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Daemon:
        daemon = Daemon(name, argv, STATE / f"{name}.log", env)
        self.owned.append(daemon)
        self.watch(daemon)
        return daemon

    def watch(self, daemon: Daemon) -> None:
        """Report its PID and check it stays up; its owner stops it."""
        self.watched.append(daemon)
        self.say(f"started {daemon.name} (pid {daemon.pid})")

    def check(self) -> None:
        """Fail fast, with its log, when a process died: the incident would only wait."""
        for daemon in self.watched:
            if not daemon.running():
                raise DemoFailure(f"{daemon.name} exited; its last lines:\n{daemon.tail()}")

    def stop_all(self) -> None:
        for daemon in reversed(self.owned):
            daemon.stop()


def port_or_free(preferred: int) -> int:
    """The usual port when it is free (so `runbook` and `temporal` work without settings),
    else any free one."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


@dataclass(frozen=True)
class Stack:
    """Where the demo's services listen."""

    address: str
    ui_port: int
    webhook_url: str
    token_file: Path

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def link(self, workflow_id: str, run_id: str | None) -> str:
        path = quote(workflow_id, safe="") + (f"/{run_id}/history" if run_id else "")
        return f"{self.ui_url}/namespaces/default/workflows/{path}"

    def runbook(self) -> str:
        """The `runbook` command as another terminal must type it to reach this Temporal."""
        command = binary("runbook", VENV_BIN)
        if self.address == "127.0.0.1:7233":
            return command
        return f"TEMPORAL_ADDRESS={self.address} {command}"


def start_temporal(processes: Processes, ui_port: int) -> str:
    port = port_or_free(7233)
    args = [binary("temporal", VENV_BIN), "server", "start-dev", "--ip", "127.0.0.1"]
    args += ["--port", str(port), "--ui-port", str(ui_port)]
    args += ["--db-filename", str((STATE / "temporal.db").resolve()), "--log-level", "error"]
    daemon = processes.start("temporal", args)
    wait_for_port(port, timeout=90, proc=daemon.proc)
    wait_for_port(ui_port, timeout=90, proc=daemon.proc)
    return f"127.0.0.1:{port}"


def shipped_warmers() -> list[dict[str, Any]]:
    """The warmers of deploy/runbook.yaml's first target, as shipped (the warm script in the
    API's image, as a Job, which the sandbox runs from sandbox/images/): the demo shows the
    example a deployment starts from, not one of its own. Only a Job's poll is shorter."""
    target = yaml.safe_load(SHIPPED_CONFIG.read_text())["targets"][0]
    return [
        {**warmer, "poll_s": JOB_POLL_S} if warmer.get("kind") == "job" else dict(warmer)
        for warmer in target["warmers"]
    ]


def demo_config(cluster: SandboxCluster) -> dict[str, Any]:
    """runbook.yaml for the demo's worker and webhook: the sandbox's Kubernetes and Redis,
    short waits, and one target the webhook routes alerts to, warmed by the shipped Job."""
    names = cluster.names
    channels: list[dict[str, str]] = [{"name": "log", "kind": "log"}]
    if os.environ.get(SLACK_URL_ENV):
        channels.append({"name": "slack", "kind": "slack", "url_env": SLACK_URL_ENV})
    return {
        "kubernetes": {"kubeconfig": str(cluster.runbook_kubeconfig)},
        "recovery": {"watch_interval": "1s", "watch_deadline": "60s"},
        "outage": {"ready_timeout": "20s", "poll": "1s"},
        "notifications": {"channels": channels},
        "webhook": {"mode": "auto"},
        "targets": [
            {
                "name": f"{names.namespace}/{names.statefulset}",
                "match": {"namespace": names.namespace, "alertname": "Redis.*"},
                "redis_url": cluster.redis_url,
                "namespace": names.namespace,
                "statefulset": names.statefulset,
                "api_deployment": names.api_deployment,
                "warmers": shipped_warmers(),
                **target_fields(cluster),
            }
        ],
    }


def start_runbook(
    processes: Processes, cluster: SandboxCluster, address: str, ui_port: int
) -> Stack:
    """The worker and the webhook pointed at Temporal; returns once the webhook answers
    ready (it has reached Temporal)."""
    config = STATE / "runbook.yaml"
    config.write_text(yaml.safe_dump(demo_config(cluster), sort_keys=False))
    token = STATE / "webhook-token"
    token.write_text(secrets.token_urlsafe(24) + "\n")
    token.chmod(0o600)
    env = dict(os.environ, TEMPORAL_ADDRESS=address, RUNBOOK_CONFIG=str(config.resolve()))
    runbook = binary("runbook", VENV_BIN)
    processes.start("worker", [runbook, "worker"], env)
    port = free_port()
    hook_env = dict(env, RUNBOOK_WEBHOOK_TOKEN_FILE=str(token.resolve()))
    hook = processes.start("webhook", [runbook, "webhook", "--port", str(port)], hook_env)
    stack = Stack(address, ui_port, f"http://127.0.0.1:{port}", token)
    wait_ready(stack.webhook_url, hook)
    return stack


def wait_ready(url: str, daemon: Daemon, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if not daemon.running():
                raise DemoFailure(f"the webhook exited; its last lines:\n{daemon.tail()}")
            try:
                if http.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    raise DemoFailure(f"the webhook was not ready after {timeout}s:\n{daemon.tail()}")
