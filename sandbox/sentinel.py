"""Real Redis Sentinels watching the sandbox's Redis StatefulSet, for the Sentinel topology.

Each Sentinel is a `redis-server <conf> --sentinel` on a free 127.0.0.1 port, with a config
file of its own that it rewrites as it learns (replicas, other Sentinels, epochs), and a log,
both in its data dir. A Sentinel stopped on purpose (the `no-quorum` fault) is started again on
the same port from the same file, so it comes back knowing what it knew, as a restarted
Sentinel pod with its volume does. Every process is stopped by PID.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from sandbox.processes import binary, free_port, stop_process, wait_for_port

SENTINEL_TIMEOUT = 0.5  # a stopped or frozen Sentinel must not hold up whoever asks


class Sentinel:
    """One Sentinel: its port, config file and log survive a stop and a start."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_file = self.data_dir / "sentinel.conf"
        self.log_file = self.data_dir / "sentinel.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def write_config(self, monitor: list[str]) -> None:
        """Before the first start only: afterwards the file is the Sentinel's own (it rewrites
        it with what it learns), and a restart must find that."""
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{self.data_dir}"',
            f'logfile "{self.log_file}"',
            *monitor,
            "",
        ]
        self.config_file.write_text("\n".join(lines))

    def start(self) -> None:
        if self.pid is not None:
            return
        self.proc = subprocess.Popen(
            [binary("redis-server"), str(self.config_file), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port,
            decode_responses=True,
            socket_timeout=SENTINEL_TIMEOUT,
            socket_connect_timeout=SENTINEL_TIMEOUT,
        )

    def command(self, *args: str) -> Any:
        """One SENTINEL subcommand on a connection closed right after."""
        with self.client() as conn:
            return conn.execute_command("SENTINEL", *args)


class SentinelGroup:
    """`count` Sentinels monitoring `master_name`; started once the Redis pods replicate."""

    def __init__(
        self,
        root: Path,
        master_name: str = "mymaster",
        *,
        count: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 6000,
    ) -> None:
        self.root = root.resolve()
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.members = [Sentinel(self.root / f"sentinel-{i}") for i in range(count)]

    @property
    def addresses(self) -> list[str]:
        return [sentinel.address for sentinel in self.members]

    def running(self) -> list[Sentinel]:
        return [sentinel for sentinel in self.members if sentinel.pid is not None]

    def start(self, master_port: int) -> SentinelGroup:
        """Every Sentinel, monitoring the master at `master_port`, from a config file written
        afresh (one left by a past run would name other ports)."""
        name = self.master_name
        monitor = [
            f"sentinel monitor {name} 127.0.0.1 {master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        try:
            for sentinel in self.members:
                sentinel.write_config(monitor)
                sentinel.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop_some(self, count: int) -> None:
        """Stop the last `count` running Sentinels: the first one stays, so it is the one
        that answers first (master_port) and knows the latest."""
        for sentinel in self.running()[-count:]:
            sentinel.stop()

    def start_stopped(self) -> None:
        """Start again every Sentinel that was started and is not running, on the same port
        from the same config file."""
        for sentinel in self.members:
            if sentinel.proc is not None:
                sentinel.start()

    def stop(self) -> None:
        for sentinel in self.members:
            sentinel.stop()

    def answers(self) -> Iterator[tuple[Sentinel, Any]]:
        """Each running Sentinel's reply to get-master-addr-by-name (those that reply)."""
        for sentinel in self.running():
            with contextlib.suppress(redis.RedisError, OSError):
                yield sentinel, sentinel.command("get-master-addr-by-name", self.master_name)

    def master_port(self) -> int | None:
        """The master's port as the first Sentinel that answers tells it; None if none does."""
        for _, reply in self.answers():
            if reply:
                return int(reply[1])
        return None

    def ready(self, replicas: int) -> bool:
        """Every Sentinel can fail over now: quorum reachable, and it knows the replicas and
        the other Sentinels (a master killed right after this gets a failover)."""
        return self.not_ready(replicas) is None

    def not_ready(self, replicas: int) -> str | None:
        """Why not every Sentinel can fail over yet (None: they all can), for a timeout to say."""
        members = self.running()
        if len(members) != len(self.members):
            return f"{len(members)} of {len(self.members)} Sentinels running"
        try:
            for sentinel in members:
                sentinel.command("ckquorum", self.master_name)  # NOQUORUM is an error reply
                state = sentinel.command("master", self.master_name)
                if int(state["num-slaves"]) < replicas:
                    return f"Sentinel {sentinel.address} knows {state['num-slaves']} replicas"
                if int(state["num-other-sentinels"]) < len(self.members) - 1:
                    return (
                        f"Sentinel {sentinel.address} knows "
                        f"{state['num-other-sentinels']} other Sentinels"
                    )
        except (redis.RedisError, OSError) as err:
            return f"a Sentinel answers {err}"
        return None

    def failover(self) -> None:
        """SENTINEL FAILOVER on the first running Sentinel: forced, no agreement needed."""
        members = self.running()
        if not members:
            raise RuntimeError("no Sentinel is running")
        members[0].command("failover", self.master_name)
