"""The image's HEALTHCHECK and the worker's Kubernetes exec probe: one image runs the worker,
the webhook and one-shot CLI commands, so the check asks PID 1 what it is.

- webhook: GET /healthz on its port answers 200 (the process serves).
- worker: a TCP connection to TEMPORAL_ADDRESS opens (a worker that cannot reach Temporal
  polls nothing; the worker has no HTTP endpoint of its own).
- anything else (runbook start/status/...): healthy while it runs.

Standard library only: it runs in the slim image without the virtualenv's packages.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from collections.abc import Mapping, Sequence

TIMEOUT_S = 3.0


def _option(argv: Sequence[str], name: str, default: str) -> str:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def check(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """None when healthy, else what is wrong."""
    if "webhook" in argv:
        port = _option(argv, "--port", "8080")
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
                return None if answer.status == 200 else f"{url} answered {answer.status}"
        except OSError as err:
            return f"{url}: {err}"
    if "worker" in argv:
        address = env.get("TEMPORAL_ADDRESS", "localhost:7233")
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=TIMEOUT_S):
                return None
        except (OSError, ValueError) as err:
            return f"Temporal at {address}: {err}"
    return None


def pid1_argv() -> list[str]:
    with open("/proc/1/cmdline", "rb") as cmdline:
        return [part.decode() for part in cmdline.read().split(b"\0") if part]


if __name__ == "__main__":
    problem = check(sys.argv[1:] or pid1_argv(), os.environ)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
    sys.exit(1 if problem else 0)
