"""Recorded histories must replay on the current code: in-flight incidents survive upgrades."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.runner import workflow_runner
from worker.telemetry import tracing_interceptor
from workflows.incident.workflow import RedisCacheFailure

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def test_corpus_is_not_empty() -> None:
    assert len(HISTORIES) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[RedisCacheFailure],
        data_converter=pydantic_data_converter,
        interceptors=[tracing_interceptor()],
        workflow_runner=workflow_runner(),
    )
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
