"""The real processes the reliability cases kill on purpose: `runbook worker` processes (one
config file, one task queue, as many as a case starts) and a Temporal dev server of the
case's own, persisted to a file on fixed ports, so it can be SIGKILLed and started again as
the same server. Everything is stopped by PID at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from sandbox.processes import binary, free_port, stop_process, wait_for_port
from worker.telemetry import tracing_interceptor

VENV_BIN = Path(sys.executable).parent


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap: no shutdown hook, no last heartbeat, no goodbye to Temporal."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


class Workers:
    """`runbook worker` processes reading one runbook.yaml, logging to files under `root`."""

    def __init__(self, root: Path, address: str, config: dict[str, Any]) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file = root / "runbook.yaml"
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
        self.env |= {"RUNBOOK_CONFIG": str(self.config_file), "TEMPORAL_ADDRESS": address}
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        log = (self.root / f"worker-{len(self.started)}.log").open("wb")
        proc = subprocess.Popen(
            [str(VENV_BIN / "runbook"), "worker"], env=self.env, stdout=log, stderr=log
        )
        self.started.append(proc)
        return proc

    def logs(self) -> str:
        """Every worker's log, for the message of a failed assertion."""
        return "\n".join(path.read_text() for path in sorted(self.root.glob("worker-*.log")))

    def stop_all(self) -> None:
        for proc in self.started:
            stop_process(proc)


class ServerDied(RuntimeError):
    pass


class DevServer:
    """`temporal server start-dev` on fixed loopback ports with a SQLite file: kill() it
    like a crashed host, start() it again, and it is the same server with the same history."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.db_file = root / "temporal.db"
        self.log_file = root / "temporal.log"
        self.port = free_port()
        self.http_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, attempts: int = 3) -> Client:
        """Start it and return a client once it serves. The dev server picks its internal
        services' ports afresh at each start, and may pick its own frontend port, just freed
        by the killed run: it then dies at once (its log says so), and is started again."""
        for attempt in range(1, attempts + 1):
            try:
                await asyncio.to_thread(self._launch)
                return await self._client()
            except ServerDied:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        args = [binary("temporal", [VENV_BIN]), "server", "start-dev", "--headless"]
        args += ["--ip", "127.0.0.1", "--port", str(self.port)]
        args += ["--http-port", str(self.http_port), "--metrics-port", str(self.metrics_port)]
        args += ["--db-filename", str(self.db_file), "--log-level", "warn"]
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        try:
            wait_for_port(self.port, timeout=60, proc=self.proc)
        except RuntimeError as err:
            raise ServerDied(str(err)) from err

    async def _client(self, within: float = 60.0) -> Client:
        """A client once the frontend answers (it listens a moment before it serves)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerDied(f"the dev server exited; see {self.log_file}")
            try:
                client = await Client.connect(
                    self.address,
                    data_converter=pydantic_data_converter,
                    interceptors=[tracing_interceptor()],
                )
                await client.count_workflows()
                return client
            except (RuntimeError, RPCError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
