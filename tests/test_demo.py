"""`make demo` runs its story and leaves no process behind, also when stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable


def processes_under(folder: Path) -> list[str]:
    """Live processes whose working directory or command line points into `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_demo_remediates_out_of_memory_after_approval_and_cleans_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "worker.demo", "--exit-when-done", "--approve-as", "demo-operator"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenario: out_of_memory" in done.stdout
    assert "flush waits for approval" in done.stdout
    assert "approve redis-cache-failure/treebeard-production/redis flush --as" in done.stdout
    assert "outcome: resolved" in done.stdout
    assert "Approval: flush approved by demo-operator" in done.stdout
    assert "watch_hit_rate       succeeded" in done.stdout
    assert "reached 60%" in done.stdout
    assert "Web UI: http://127.0.0.1:" in done.stdout
    assert processes_under(tmp_path) == []


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "worker.demo"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert processes_under(tmp_path) != []
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert processes_under(tmp_path) == []
