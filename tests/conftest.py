"""Real parts only: a Temporal dev server, the time-skipping test server, redis-server
processes on free ports. Everything started here is stopped here, by PID."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sandbox.cluster import SandboxCluster
from sandbox.processes import RedisProcess, binary
from worker.telemetry import tracing_interceptor

VENV_BIN = [Path(sys.executable).parent]


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal", VENV_BIN),
        data_converter=pydantic_data_converter,
        interceptors=[tracing_interceptor()],
        ip="127.0.0.1",
    )
    async with env:
        yield env


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server", VENV_BIN),
        data_converter=pydantic_data_converter,
    )
    async with env:
        yield env


class RedisFactory:
    """Start as many real redis-servers as a test needs; all are stopped at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[RedisProcess] = []

    def __call__(self, **config: str) -> RedisProcess:
        return self._start(config)

    def limited(self, open_files: int, **config: str) -> RedisProcess:
        """A server whose process may open at most `open_files` files (caps maxclients)."""
        return self._start(config, open_files=open_files)

    def from_config_file(self, **config: str) -> RedisProcess:
        """A server started from a writable redis.conf (CONFIG REWRITE works)."""
        return self._start(config, config_file=True)

    def _start(
        self, config: dict[str, str], open_files: int | None = None, config_file: bool = False
    ) -> RedisProcess:
        root = self.root / f"redis-{len(self.started)}"
        server = RedisProcess(root, config, open_files, config_file)
        self.started.append(server)
        return server.start()

    def stop_all(self) -> None:
        """SIGKILL: a graceful shutdown of a server whose disk was broken on purpose waits."""
        for server in self.started:
            server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisFactory]:
    factory = RedisFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxCluster]:
    """A sandbox cluster whose runbook credentials are held to the worker's Role."""
    from tests.sandbox_checks import ROLE

    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as running:
        yield running
