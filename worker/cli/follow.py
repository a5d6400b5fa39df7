"""`runbook status ID --follow`: a live view of one incident until it ends.

Redraws on a terminal (rich Live); without one (a pipe, a CI log) it prints a line per change
instead of escape codes, so the output stays readable anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from contracts.incident import IncidentStatus
from contracts.steps import Step
from worker.cli.render import approval_commands

STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "running": "bold cyan",
    "pending_approval": "bold yellow",
    "planned": "",
}


def _duration(step: Step) -> str:
    if step.started_at and step.finished_at:
        return f"{(step.finished_at - step.started_at).total_seconds():.1f}s"
    return ""


def view(workflow_id: str, status: IncidentStatus, now: datetime) -> Group:
    scenario = status.scenario.value if status.scenario else "(triaging)"
    head = Text(f"{workflow_id}  phase {status.phase}  scenario {scenario}", style="bold")
    table = Table(show_header=True, header_style="bold", expand=False)
    for column in ("#", "step", "state", "took", "detail"):
        table.add_column(column)
    for i, step in enumerate(status.plan, 1):
        style = STATE_STYLE.get(step.status, "")
        table.add_row(str(i), step.name.value, Text(step.status, style=style), _duration(step),
                      (step.detail or step.title)[:80])  # fmt: skip
    parts: list[Text | Table] = [head, table]
    for p in status.pending_approvals:
        waited = int((now - p.since).total_seconds())
        parts.append(Text(f"waiting {waited}s for approval of {p.step.value}: {p.action}",
                          style="bold yellow"))  # fmt: skip
        parts += [Text(f"  $ {command}") for command in approval_commands(workflow_id, p)]
    updates = [e for e in status.timeline if e.kind in ("escalation", "notified", "alert")]
    if updates:
        last = updates[-1]
        parts.append(Text(f"latest: {last.at:%H:%M:%S} {last.kind}: {last.message}", style="dim"))
    return Group(*parts)


def summary_line(status: IncidentStatus) -> str:
    """One line per change when there is no terminal to redraw."""
    current = next((s for s in status.plan if s.status in ("running", "pending_approval")), None)
    doing = f"{current.name.value} {current.status}" if current else "-"
    done = sum(1 for s in status.plan if s.status in ("succeeded", "failed", "skipped"))
    return f"phase {status.phase}: {doing} ({done}/{len(status.plan)} steps done)"


async def follow(
    workflow_id: str,
    fetch: Callable[[], Awaitable[IncidentStatus]],
    clock: Callable[[], datetime],
    every: float = 1.0,
    console: Console | None = None,
    on_status: Callable[[IncidentStatus], Awaitable[None]] | None = None,
) -> IncidentStatus:
    """Until the incident is done. `on_status` sees each status once it is shown: the demo
    uses it to explain and give approvals; what it prints lands above the live view."""
    console = console or Console()
    react = on_status or _nothing
    status = await fetch()
    if not console.is_terminal:
        last = ""
        while True:
            line = summary_line(status)
            if line != last:
                console.print(line, highlight=False)
                last = line
            await react(status)
            if status.phase == "done":
                return status
            await asyncio.sleep(every)
            status = await fetch()
    with Live(view(workflow_id, status, clock()), console=console, refresh_per_second=4) as live:
        await react(status)
        while status.phase != "done":
            await asyncio.sleep(every)
            status = await fetch()
            live.update(view(workflow_id, status, clock()))
            await react(status)
    return status


async def _nothing(status: IncidentStatus) -> None:
    return None
