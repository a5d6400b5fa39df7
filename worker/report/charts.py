"""The review's timeline chart: what a reader wants from an incident at a glance. Did the hit
rate recover, when did memory fall, how long did each step and each approval wait take, when
was the API on the database. Series are read from the report alone (pure), then drawn with
matplotlib into an SVG a person can open or a page can embed."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from contracts.incident import IncidentReport
from contracts.steps import Step, StepName

if TYPE_CHECKING:  # matplotlib is imported only when a chart is drawn
    from matplotlib.axes import Axes

Clock = Callable[[datetime], float]  # a moment -> seconds since the incident started

STATUS_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e",
                  "running": "#1565c0", "pending_approval": "#ef6c00"}  # fmt: skip


@dataclass(frozen=True)
class Bar:
    label: str
    start: float  # seconds since the incident started
    end: float
    status: str = ""


@dataclass
class Series:
    """Everything the chart draws, in seconds since the incident started."""

    steps: list[Bar] = field(default_factory=list)
    waits: list[Bar] = field(default_factory=list)
    watched: list[tuple[float, float]] = field(default_factory=list)  # the hit rate, per interval
    redis_hit_rate: list[tuple[float, float]] = field(default_factory=list)  # INFO, since start
    unreachable: list[float] = field(default_factory=list)
    memory: list[tuple[float, float]] = field(default_factory=list)
    clients: list[tuple[float, int]] = field(default_factory=list)
    latency_ms: list[tuple[float, float]] = field(default_factory=list)  # PING p50
    fallback: tuple[float, float] | None = None  # the API on the database, cache off


def series_of(report: IncidentReport) -> Series:
    def at(moment: datetime) -> float:
        return (moment - report.started_at).total_seconds()

    out = Series()
    for i, step in enumerate(report.steps, 1):
        if step.started_at and step.finished_at and step.status != "skipped":
            out.steps.append(Bar(f"{i}. {step.name.value}", at(step.started_at),
                                 at(step.finished_at), step.status))  # fmt: skip
    out.waits = _approval_waits(report, at)
    for sample in report.samples:
        if not sample.reachable:
            out.unreachable.append(at(sample.at))
            continue
        if sample.hit_rate is not None:
            out.redis_hit_rate.append((at(sample.at), sample.hit_rate))
        if sample.memory_ratio is not None:
            out.memory.append((at(sample.at), sample.memory_ratio))
        if sample.clients is not None:
            out.clients.append((at(sample.at), sample.clients))
        if sample.ping_p50_ms is not None:
            out.latency_ms.append((at(sample.at), sample.ping_p50_ms))
    for watch in (s for s in report.steps if s.name is StepName.WATCH_HIT_RATE):
        out.watched += _curve(watch, at)
    out.fallback = _fallback(report.steps, at, at(report.finished_at))
    return out


def _approval_waits(report: IncidentReport, at: Clock) -> list[Bar]:
    """From each approval request to the moment its step went on (or was given up)."""
    waits = []
    for entry in (e for e in report.timeline if e.kind == "approval_requested"):
        name = entry.message.split(":", 1)[0]
        later = [s.started_at for s in report.steps
                 if s.name.value == name and s.started_at and s.started_at >= entry.at]  # fmt: skip
        end = min(later) if later else report.finished_at
        waits.append(Bar(f"approval: {name}", at(entry.at), at(end)))
    return waits


def _curve(watch: Step, at: Clock) -> list[tuple[float, float]]:
    """watch_hit_rate's samples ("2.0s": 0.71), placed from the step's start."""
    if watch.result is None or watch.started_at is None:
        return []
    begin = at(watch.started_at)
    points = []
    for key, value in watch.result.after.items():
        offset = key[:-1] if key.endswith("s") else ""
        if isinstance(value, float) and offset.replace(".", "", 1).isdigit():
            points.append((begin + float(offset), value))
    return sorted(points)


def _fallback(steps: list[Step], at: Clock, end: float) -> tuple[float, float] | None:
    entered = [s for s in steps if s.name is StepName.ENABLE_FALLBACK and s.status == "succeeded"]
    if not entered or entered[0].finished_at is None:
        return None
    begin = at(entered[0].finished_at)
    back = [s.finished_at for s in steps if s.name is StepName.RE_ENABLE
            and s.status == "succeeded" and s.finished_at]  # fmt: skip
    return (begin, at(back[-1]) if back else end)


def timeline_svg(report: IncidentReport) -> str:
    """The chart as an SVG document (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data = series_of(report)
    plt.rcParams["svg.hashsalt"] = report.workflow_id  # stable ids: the same report, same file
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, and a smaller file
    fig, (steps, rate, memory, latency) = plt.subplots(
        4, 1, figsize=(10, 9), sharex=True, height_ratios=[2.2, 1.6, 1.2, 1.0]
    )
    try:
        _draw_steps(steps, data)
        _draw_hit_rate(rate, data)
        _draw_memory(memory, data)
        _draw_latency(latency, data)
        for axes in (steps, rate, memory, latency):
            if data.fallback:
                axes.axvspan(*data.fallback, color="#fff3e0", zorder=0,
                             label="API on the database (cache off)")  # fmt: skip
        rate.legend(fontsize=7, loc="lower right")  # after the shading: it is in the legend too
        latency.set_xlabel("seconds since the incident started")
        fig.suptitle(f"{report.workflow_id}: {report.scenario.value}, {report.outcome}")
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
        return out.getvalue()
    finally:
        plt.close(fig)


def _draw_steps(axes: Axes, data: Series) -> None:
    bars = data.steps + data.waits
    labels = [b.label for b in bars]
    for row, bar in enumerate(bars):
        waiting = bar.label.startswith("approval:")
        colour = "#ffcc80" if waiting else STATUS_COLOURS.get(bar.status, "#616161")
        edge = "#5d4037" if waiting else None
        axes.barh(row, max(bar.end - bar.start, 0.05), left=bar.start, color=colour,
                  hatch="//" if waiting else None, edgecolor=edge)  # fmt: skip
    axes.set_yticks(range(len(bars)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_title("Steps (green succeeded, red failed) and approval waits (hatched)",
                   fontsize=9, loc="left")  # fmt: skip


def _draw_hit_rate(axes: Axes, data: Series) -> None:
    if data.watched:
        xs, ys = zip(*data.watched, strict=True)
        axes.plot(xs, [y * 100 for y in ys], "o-", color="#1565c0",
                  label="hit rate per interval (watch_hit_rate)")  # fmt: skip
    if data.redis_hit_rate:
        xs, ys = zip(*data.redis_hit_rate, strict=True)
        axes.plot(xs, [y * 100 for y in ys], ".--", color="#90a4ae",
                  label="Redis INFO hit rate since its start")  # fmt: skip
    if data.unreachable:
        axes.plot(data.unreachable, [0] * len(data.unreachable), "x", color="#c62828",
                  label="Redis unreachable: no cache")  # fmt: skip
    axes.set_ylim(-5, 105)
    axes.set_ylabel("hit rate %")
    axes.set_title("Hit rate", fontsize=9, loc="left")


def _draw_memory(axes: Axes, data: Series) -> None:
    if data.memory:
        xs, ys = zip(*data.memory, strict=True)
        axes.plot(xs, [y * 100 for y in ys], "s-", color="#6a1b9a",
                  label="memory, % of maxmemory")  # fmt: skip
    axes.set_ylabel("memory %")
    if data.clients:
        twin = axes.twinx()
        xs, counts = zip(*data.clients, strict=True)
        twin.plot(xs, counts, "^:", color="#00838f", label="clients")
        twin.set_ylabel("clients")
    axes.set_title("Memory and clients, from each diagnosis", fontsize=9, loc="left")


def _draw_latency(axes: Axes, data: Series) -> None:
    if data.latency_ms:
        xs, ys = zip(*data.latency_ms, strict=True)
        axes.plot(xs, ys, "d-", color="#37474f", label="PING p50")
    axes.set_ylabel("ms")
    axes.set_title("Latency (PING p50), from each diagnosis", fontsize=9, loc="left")
