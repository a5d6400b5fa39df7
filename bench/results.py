"""Shared by the benchmarks: the machine's description and bench/RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    return f"{os.cpu_count()} cores, {cpu_model()}, Python {sys.version.split()[0]}"


def write_section(bench: str, variant: str, text: str) -> None:
    """Rewrite only this benchmark's section for this variant; other sections stay."""
    begin, end = f"<!-- {bench}:{variant}:begin -->", f"<!-- {bench}:{variant}:end -->"
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    section = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + section + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(new)
