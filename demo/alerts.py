"""How the demo's incident begins: with an alert reaching the webhook, as in production.

Where redis_exporter, Prometheus and Alertmanager are installed, the real chain watches the
sandbox's Redis and fires (sandbox/alerting.py, the shipped rules and receiver). Elsewhere the
demo posts the alert Alertmanager would have sent, in Alertmanager's own format and with its
bearer token, and says so: the rest of the story is the same.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from demo.scenarios import DemoScenario
from demo.stack import STATE, DemoFailure, Processes, Stack
from sandbox.alerting import INSTALL_HINT, AlertingChain, missing_binaries
from sandbox.cluster import SandboxCluster

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"


class AlertPath(Protocol):
    def before_fault(self) -> None: ...

    def after_fault(self, scenario: DemoScenario) -> None: ...


class RealChain:
    def __init__(self, chain: AlertingChain, say: Callable[[str], None]) -> None:
        self.chain = chain
        self.say = say

    def before_fault(self) -> None:
        self.chain.wait_scraped()
        self.say(f"Prometheus ({self.chain.prometheus_url}) sees Redis up through redis_exporter")

    def after_fault(self, scenario: DemoScenario) -> None:
        self.say(
            f"waiting for the alert ({scenario.alert}): redis_exporter -> Prometheus -> "
            f"Alertmanager ({self.chain.alertmanager_url}) -> webhook -> incident"
        )


class PostedAlert:
    def __init__(
        self, stack: Stack, cluster: SandboxCluster, say: Callable[[str], None], why: str
    ) -> None:
        self.stack = stack
        self.cluster = cluster
        self.say = say
        self.why = why

    def before_fault(self) -> None:
        self.say(f"{self.why}: the demo posts the alert to the webhook itself")

    def after_fault(self, scenario: DemoScenario) -> None:
        self.say(f"posting {scenario.alert} as Alertmanager would, to {self.stack.webhook_url}")
        post_alert(self.stack, alertmanager_payload(scenario.alert, self.cluster))


def alertmanager_payload(name: str, cluster: SandboxCluster) -> dict[str, Any]:
    """One firing alert in Alertmanager's webhook format (version 4), labelled as the shipped
    Prometheus config labels the Redis target."""
    started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    labels = {
        "alertname": name,
        "severity": "critical",
        "namespace": cluster.names.namespace,
        "instance": f"127.0.0.1:{cluster.redis_port}",
        "job": "redis",
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} ({labels['namespace']}), posted by make demo"},
        "startsAt": started,
        "endsAt": ZERO_TIME,
        "generatorURL": "",
        "fingerprint": hashlib.sha256(f"{name}{started}".encode()).hexdigest()[:16],
    }
    return {
        "receiver": "redis-runbook",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {"namespace": labels["namespace"], "alertname": name},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
    }


def post_alert(stack: Stack, payload: dict[str, Any], within: float = 60.0) -> None:
    """POST until recorded; a 503 (Temporal busy) is retried, as Alertmanager would."""
    token = stack.token_file.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + within
    with httpx.Client(timeout=10) as http:
        while True:
            answer = http.post(
                f"{stack.webhook_url}/alerts/alertmanager", json=payload, headers=headers
            )
            if answer.status_code == 200:
                return
            if answer.status_code != 503 or time.monotonic() > deadline:
                raise DemoFailure(f"the webhook answered {answer.status_code}: {answer.text}")
            time.sleep(1)


@contextmanager
def alert_path(
    stack: Stack,
    cluster: SandboxCluster,
    processes: Processes,
    say: Callable[[str], None],
    post: bool,
) -> Iterator[AlertPath]:
    """The real chain when installed (and not declined with --post-alert), else posting."""
    missing = missing_binaries()
    if post or missing:
        why = "--post-alert" if post else f"not installed: {', '.join(missing)} ({INSTALL_HINT})"
        yield PostedAlert(stack, cluster, say, why)
        return
    root = STATE / "alerting"
    shutil.rmtree(root, ignore_errors=True)  # a fresh TSDB: no series from an earlier run
    port = int(stack.webhook_url.rsplit(":", 1)[1])
    with AlertingChain(root, cluster.redis_port, port, stack.token_file) as chain:
        for daemon in chain.daemons:
            processes.watch(daemon)
        yield RealChain(chain, say)
