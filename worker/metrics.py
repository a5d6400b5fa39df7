"""The worker's Prometheus endpoint (`metrics.address`).

Temporal's runtime exports its SDK metrics and what the workflows record through its metric
meter (workflows/incident/metrics.py), on a loopback port of its own. This endpoint serves
that, plus what only scrape time knows: the age of each target's oldest pending approval
(`runbook_approval_oldest_pending_age_seconds`), computed from the moment it began waiting,
so the number a person reads on the endpoint grows while the approval waits."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

SINCE = "runbook_approval_oldest_pending_timestamp_seconds"
AGE = "runbook_approval_oldest_pending_age_seconds"
SAMPLE = re.compile(rf"^{SINCE}(\{{.*\}})? (\S+)$", re.MULTILINE)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def with_ages(text: str, now: float) -> str:
    """The runtime's exposition with the age of each pending approval added (0: none)."""
    lines = [f"# HELP {AGE} How long the oldest pending approval has waited (0: none waits)",
             f"# TYPE {AGE} gauge"]  # fmt: skip
    for labels, value in SAMPLE.findall(text):
        since = float(value)
        lines.append(f"{AGE}{labels} {max(0.0, now - since) if since > 0 else 0.0:.3f}")
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WorkerMetrics:
    """The runtime the worker's client uses, and the endpoint in front of it."""

    def __init__(self, address: str) -> None:
        self._inner = f"127.0.0.1:{loopback_port()}"
        config = PrometheusConfig(
            bind_address=self._inner, counters_total_suffix=True, durations_as_seconds=True
        )
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
        host, port = address.rsplit(":", 1)
        self._server = ThreadingHTTPServer((host, int(port)), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        inner = f"http://{self._inner}/metrics"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                try:
                    with urllib.request.urlopen(inner, timeout=5) as answer:
                        text = answer.read().decode()
                except OSError as err:
                    self.send_error(503, f"the Temporal runtime's metrics: {err}")
                    return
                body = with_ages(text, time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
