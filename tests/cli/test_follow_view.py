"""The live view renders every part of a running incident on a real terminal console."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from rich.console import Console

from contracts.decisions import PendingApproval
from contracts.diagnosis import Scenario
from contracts.incident import IncidentStatus
from contracts.steps import Step, StepName
from worker.cli.follow import follow, view

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def status(phase: str) -> IncidentStatus:
    return IncidentStatus.model_validate(
        {
            "phase": phase,
            "scenario": Scenario.OUT_OF_MEMORY,
            "plan": [
                Step(name=StepName.DIAGNOSE, title="d", status="succeeded",
                     started_at=NOW, finished_at=NOW + timedelta(seconds=2)),
                Step(name=StepName.FLUSH, title="FLUSHDB", status="pending_approval"),
            ],
            "pending_approvals": [
                PendingApproval(step=StepName.FLUSH, reason="r", action="FLUSHDB",
                                since=NOW - timedelta(seconds=42), approvals_needed=1)
            ],
        }
    )  # fmt: skip


def test_view_shows_steps_durations_and_the_approve_command() -> None:
    console = Console(record=True, width=200, force_terminal=True)
    console.print(view("redis-cache-failure/ns/redis", status("executing"), NOW))
    text = console.export_text()
    assert "phase executing  scenario out_of_memory" in text
    assert "2.0s" in text
    assert "waiting 42s for approval of flush: FLUSHDB" in text
    assert "runbook approve redis-cache-failure/ns/redis flush --as YOUR-NAME" in text


def test_follow_redraws_on_a_terminal_until_done() -> None:
    states = iter([status("executing"), status("executing"), status("done")])

    async def fetch() -> IncidentStatus:
        return next(states)

    console = Console(record=True, width=200, force_terminal=True)
    final = asyncio.run(follow("w", fetch, lambda: NOW, every=0.01, console=console))
    assert final.phase == "done"
    assert "phase done" in console.export_text()


def test_follow_shows_each_status_to_on_status_after_drawing_it() -> None:
    """The demo hangs its approval narration on this: it must see every status, pending
    approvals included, and print below what was drawn."""
    states = iter([status("executing"), status("done")])
    seen: list[str] = []

    async def fetch() -> IncidentStatus:
        return next(states)

    async def on_status(s: IncidentStatus) -> None:
        seen.append(f"{s.phase}:{','.join(p.step.value for p in s.pending_approvals)}")
        console.print(f"narrated {s.phase}")

    console = Console(record=True, width=200, force_terminal=False)
    asyncio.run(follow("w", fetch, lambda: NOW, every=0.01, console=console, on_status=on_status))
    assert seen == ["executing:flush", "done:flush"]
    lines = console.export_text().splitlines()
    assert lines[0].startswith("phase executing: flush pending_approval")
    assert lines[1:] == [
        "narrated executing",
        "phase done: flush pending_approval (1/2 steps done)",
        "narrated done",
    ]
