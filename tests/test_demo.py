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


def run_demo(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "worker.demo", "--exit-when-done", *args],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert processes_under(tmp_path) == []
    return done.stdout


def test_default_demo_restarts_a_killed_redis_unattended(tmp_path: Path) -> None:
    out = run_demo(tmp_path)
    assert "injecting the fault: down" in out
    assert "scenario: redis_down" in out
    assert "restart              succeeded" in out
    assert "outcome: resolved" in out
    assert "Web UI: http://127.0.0.1:" in out


def test_oom_demo_stops_at_approvals_and_recovers(tmp_path: Path) -> None:
    out = run_demo(tmp_path, "--scenario", "oom", "--approve-as", "demo-operator")
    assert "scenario: out_of_memory" in out
    assert "flush waits for approval" in out
    assert "approve redis-cache-failure/treebeard-production/redis flush --as" in out
    assert "Approval: raise_memory_limit approved by demo-operator" in out
    assert "watch_hit_rate       succeeded" in out
    assert "outcome: resolved" in out


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "worker.demo", "--scenario", "oom"],
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
