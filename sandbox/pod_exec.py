"""What `kubectl exec` runs in a sandbox pod: a local process with the container's env.

A sandbox pod is not a container, so exec runs the command on this machine, in the pod's own
directory, with the container's environment (its `env` values, HOSTNAME the pod's name). One
thing is translated so that the runbook's check from the application's side means what it
means in a cluster: `redis-cli -h <service> [-p <port>]` (or localhost in the Redis pod) goes
to the address the pod would reach (sandbox.pod_network), and a Service with no ready
endpoint fails as redis-cli fails there: "Could not connect to Redis at redis:6379:
Connection refused", exit code 1.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox.kube.api import KubeAPI
from sandbox.kube.exec import ExecRequest, Started
from sandbox.manifests import PORT_ANNOTATION
from sandbox.pod_network import Unreachable, reach

JSONDict = dict[str, Any]
REDIS_PORT = 6379


def container_env(pod: Mapping[str, Any], container: str) -> dict[str, str]:
    """The environment the container's process sees (values only; valueFrom is not served)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": pod["metadata"]["name"]}
    for spec in pod["spec"]["containers"]:
        if spec["name"] == container:
            env.update({e["name"]: str(e.get("value", "")) for e in spec.get("env") or []})
    return env


def redis_cli_address(argv: list[str]) -> tuple[str, int, int | None, int | None]:
    """(host, port, index of the host value, index of the port value) in a redis-cli call."""
    host, port, host_at, port_at = "127.0.0.1", REDIS_PORT, None, None
    for i, word in enumerate(argv[:-1]):
        if word == "-h":
            host, host_at = argv[i + 1], i + 1
        elif word == "-p" and argv[i + 1].isdigit():
            port, port_at = int(argv[i + 1]), i + 1
    return host, port, host_at, port_at


class PodExec:
    """Starts exec'd commands for the API server, on the controller's side."""

    def __init__(self, api: KubeAPI, root: Path) -> None:
        self.api = api
        self.root = root

    async def start(self, pod: JSONDict, asked: ExecRequest) -> Started:
        container = asked.container or pod["spec"]["containers"][0]["name"]
        argv = list(asked.command)
        if Path(argv[0]).name == "redis-cli":
            try:
                argv = await self.route_redis_cli(pod, argv)
            except Unreachable as err:
                host, port, _, _ = redis_cli_address(argv)
                said = f"Could not connect to Redis at {host}:{port}: {err.reason}\n"
                return Started(stderr=said, exit_code=1)
        where = self.root / "pods" / pod["metadata"]["namespace"] / pod["metadata"]["name"]
        where.mkdir(parents=True, exist_ok=True)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=container_env(pod, container),
                cwd=where,
                stdin=asyncio.subprocess.PIPE if asked.stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as err:
            return Started(failure=f'error executing command in container: exec: "{argv[0]}": '
                           f"executable file not found in $PATH ({err.strerror})")  # fmt: skip
        return Started(process=process)

    async def route_redis_cli(self, pod: JSONDict, argv: list[str]) -> list[str]:
        """The same redis-cli call, aimed at the address the pod would reach."""
        host, port, host_at, port_at = redis_cli_address(argv)
        own = (pod["metadata"].get("annotations") or {}).get(PORT_ANNOTATION)
        if host in ("127.0.0.1", "localhost"):
            if not own or port != REDIS_PORT:  # nothing listens there in this pod
                raise Unreachable(host, port, 111, "Connection refused")
            real_host, real_port = "127.0.0.1", int(own)  # the Redis pod's own server
        else:
            real_host, real_port = await reach(self.api, pod, host, port)
        routed = list(argv)
        if port_at is not None:
            routed[port_at] = str(real_port)
        if host_at is not None:
            routed[host_at] = real_host
        if port_at is None:
            routed[1:1] = ["-p", str(real_port)]
        if host_at is None:
            routed[1:1] = ["-h", real_host]
        return routed
