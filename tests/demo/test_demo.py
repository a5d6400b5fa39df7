"""`make demo` runs its story from the alert to the review and leaves no process behind: when
it exits by itself (--exit-when-done) and when stopped with Ctrl-C. Each demo runs as a
subprocess in a folder of its own, so every process it started has its working directory
there: a scan of /proc finds any survivor, whatever its command line."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from demo.scenarios import SCENARIOS
from sandbox.alerting import missing_binaries

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
# The demo's worker, on a machine busy with the other tests: see tests/harness.LOADED_MACHINE.
ENV = dict(os.environ, PYTHONPATH=str(REPO), RUNBOOK_THRESHOLDS__PING_P95_MS="250")
ENV.pop("RUNBOOK_SLACK_WEBHOOK_URL", None)


def processes_under(folder: Path) -> list[str]:
    """Live processes whose working directory or command line points into `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(folder) in cmdline or cwd.startswith(str(folder))):
            found.append(f"{entry.name}: {cmdline}")
    return found


def reported_pids(out: str) -> dict[str, int]:
    """What the demo said it started: `started NAME (pid N)`."""
    return {name: int(pid) for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", out)}


def alive(pid: int, folder: Path) -> bool:
    """Still running, and still the demo's (a reused PID elsewhere does not count)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(folder))
    except OSError:
        return False


def assert_nothing_left(out: str, folder: Path) -> None:
    started = reported_pids(out)
    assert {"temporal", "worker", "webhook", "redis-server"} <= started.keys(), out
    deadline = time.monotonic() + 10  # the kernel may take a moment to reap
    while processes_under(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_under(folder) == []
    assert [name for name, pid in started.items() if alive(pid, folder)] == []


def run_demo(tmp_path: Path, *args: str, **env: str) -> str:
    """`env`: more for the demo's processes (RUNBOOK_* override the demo's runbook.yaml)."""
    done = subprocess.run(
        [PYTHON, "-m", "demo", "--exit-when-done", *args],
        cwd=tmp_path,
        env={**ENV, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_nothing_left(done.stdout, tmp_path)
    return done.stdout


def test_scenario_list_and_an_unknown_scenario(tmp_path: Path) -> None:
    def demo(scenario: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "demo", "--scenario", scenario],
            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    listed = demo("list")
    assert listed.returncode == 0, listed.stderr
    for name, scenario in SCENARIOS.items():
        (line,) = [x for x in listed.stdout.splitlines() if x.strip().startswith(name + " ")]
        assert scenario.story in line
    assert "[default]" in next(x for x in listed.stdout.splitlines() if "down " in x)

    unknown = demo("meltdown")
    assert unknown.returncode == 2
    assert "no scenario 'meltdown'" in unknown.stderr
    assert all(name in unknown.stderr for name in SCENARIOS)
    assert processes_under(tmp_path) == []


def test_default_demo_is_opened_by_the_alert_and_resolved_unattended(tmp_path: Path) -> None:
    started = time.monotonic()
    out = run_demo(tmp_path)
    took = time.monotonic() - started

    assert "injecting the fault: down" in out
    kubeconfig = tmp_path / ".runbook" / "sandbox" / "kubeconfig"
    assert f"follow it with kubectl: export KUBECONFIG={kubeconfig.resolve()}" in out, out
    assert "kubectl get pods -n treebeard-production -w" in out
    if missing_binaries():  # the demo says it posts the alert itself
        assert "not installed" in out and "posting RedisDown" in out
    else:
        assert {"prometheus", "alertmanager", "exporter"} <= reported_pids(out).keys()
        assert "waiting for the alert (RedisDown)" in out
    assert "the alert opened incident redis-cache-failure/treebeard-production/redis" in out
    assert "phase done" in out  # the live view, one line per change without a terminal
    assert "scenario: redis_down" in out
    assert "restart              succeeded" in out
    assert "waits for approval" not in out
    assert "outcome: resolved" in out
    assert "Web UI: http://127.0.0.1:" in out
    assert took < 120, f"the default demo took {took:.0f}s"


def test_oom_demo_explains_three_ways_to_approve_and_recovers(tmp_path: Path) -> None:
    out = run_demo(tmp_path, "--scenario", "oom", "--approve-as", "demo-operator", "--post-alert")

    assert "posting RedisOutOfConfiguredMaxmemory as Alertmanager would" in out
    assert "scenario: out_of_memory" in out
    step = "set_eviction_policy"
    assert f">>> {step} waits for approval" in out
    assert "1. Temporal Web UI: http://127.0.0.1:" in out
    assert f'"Send an Update": name decide, input {{"step": "{step}"' in out
    assert f'"Send a Signal": name approve, input {{"step": "{step}"' in out
    assert f"approve redis-cache-failure/treebeard-production/redis {step} --as YOUR-NAME" in out
    assert "3. Slack: none configured here" in out
    assert f"{step} approved (1/1) (--approve-as demo-operator)" in out
    assert "flush                skipped" in out  # evicting now: no flush needed
    assert "Approval: raise_memory_limit approved by demo-operator" in out
    assert "outcome: resolved" in out


def test_full_demo_flushes_then_the_shipped_job_warms_and_the_hit_rate_climbs(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    out = run_demo(tmp_path, "--scenario", "full", "--approve-as", "demo-operator", "--post-alert")
    took = time.monotonic() - started

    assert "posting RedisOutOfConfiguredMaxmemory as Alertmanager would" in out
    assert "kubectl get jobs -n treebeard-production" in out
    assert "scenario: out_of_memory" in out
    assert "set_eviction_policy" not in out  # volatile-lru already evicts: it has no TTLs
    assert ">>> flush waits for approval" in out
    assert "flush approved (1/1) (--approve-as demo-operator)" in out
    assert "flush                succeeded" in out
    assert "raise_memory_limit   skipped" in out
    assert "warm                 succeeded" in out
    assert re.search(r"demo: warm: job warm-cache-\w+ completed in [\d.]+s, \d+ keys", out), out
    assert "warm_cache: wrote 50 catalog items (critical, TTL 600s)" in out  # the Job's log
    assert "watch_hit_rate       succeeded" in out
    assert re.search(r"demo: watch_hit_rate: [\d.]+s \d+%.*reached 60%", out), out
    assert "Approval: flush approved by demo-operator" in out
    assert "outcome: resolved" in out
    assert took < 120, f"the full demo took {took:.0f}s"


def test_crashloop_demo_force_deletes_the_pod_once_approved(tmp_path: Path) -> None:
    # The restart's wait gives up sooner than the demo's 20 s: the same story, in less time.
    out = run_demo(tmp_path, "--scenario", "crashloop", "--approve-as", "op", "--post-alert",
                   RUNBOOK_OUTAGE__READY_TIMEOUT="6s")  # fmt: skip

    assert "posting RedisDown as Alertmanager would" in out
    assert "wait_ready           failed" in out  # a rollout restart cannot fix a crash loop
    assert ">>> force_delete_pod waits for approval" in out
    assert "force_delete_pod     succeeded" in out
    assert "outcome: resolved" in out


class Output:
    """A process's output read by a thread (a read may block), so waits can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.put(line)

    def wait_for(self, text: str, within: float) -> str:
        """Until a line holds `text`; everything read so far."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                continue
            if text in self.seen[-1]:
                return self.text()
        raise AssertionError(f"no line with {text!r} within {within}s:\n{self.text()}")

    def text(self) -> str:
        return "".join(self.seen)

    def until_closed(self, within: float) -> str:
        self.reader.join(within)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.text()


def test_ctrl_c_at_an_approval_stops_every_process_and_the_next_demo_starts_clean(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "demo", "--scenario", "oom", "--post-alert"],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(proc)
    try:
        out = output.wait_for("waiting for you (Ctrl-C stops everything)", 180)
        assert "2. Terminal: " in out
        assert processes_under(tmp_path) != []
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = output.until_closed(10)
    assert code == 0, out
    assert "stopped every process it started" in out
    assert_nothing_left(out, tmp_path)

    # The interrupted incident still waits in .runbook/temporal.db: the next demo ends it
    # before its worker starts, so it neither resumes against the new sandbox nor takes the
    # new alert.
    again = run_demo(tmp_path, "--post-alert")
    assert "terminated redis-cache-failure/treebeard-production/redis, left running" in again
    assert again.index("terminated") < again.index("started worker")
    assert "outcome: resolved" in again


def test_failover_demo_waits_for_sentinel_and_restarts_nothing_meanwhile(tmp_path: Path) -> None:
    """Three real Sentinels at the runbook's own timings (down-after 5 s): the incident opens
    before or while they fail over, waits for them, and only then restarts the old master."""
    out = run_demo(tmp_path, "--scenario", "failover")
    assert "three Sentinels" in out and "quorum 2, down-after 5000 ms" in out
    assert "scenario: failover" in out
    assert "waiting for Sentinel, restarting nothing" in out
    assert "wait_failover        succeeded" in out
    assert "verify_writes        succeeded" in out
    assert "restart_replica      succeeded" in out
    assert "restart              " not in out  # no rollout restart of the StatefulSet
    assert "outcome: resolved" in out
    master = re.search(r"the master is now (redis-\d)", out)
    assert master is not None and master[1] != "redis-0", out
    assert f"points at {master[1]}" in out  # the API's Service followed the failover
    assert "redis-0, the old master, answers as a replica" in out
