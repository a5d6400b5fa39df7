"""Fixtures of the reliability cases: a sandbox cluster held to the worker's Role, `runbook
worker` processes to kill, and the `slow` marker for cases that wait out a heartbeat timeout
(`make test-reliability`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.processes import Workers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: waits out a 15 s heartbeat timeout; not in `make test`, run by "
        "`make test-reliability`",
    )


WorkersFor = Callable[[str, dict[str, Any]], Workers]


@pytest.fixture
def workers_for(tmp_path: Path) -> Iterator[WorkersFor]:
    """workers_for(temporal_address, runbook.yaml as a dict) -> Workers; every process they
    started is stopped at the end, by PID."""
    made: list[Workers] = []

    def make(address: str, config: dict[str, Any]) -> Workers:
        made.append(Workers(tmp_path / f"workers-{len(made)}", address, config))
        return made[-1]

    yield make
    for pool in made:
        pool.stop_all()
