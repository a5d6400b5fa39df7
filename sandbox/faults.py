"""Drive a real Redis into the states the runbook handles. For tests and the demo only."""

from __future__ import annotations

import time

import redis

# What the fills write: a batch job's keys, none with a TTL (the cache's own keys have one).
FILL_PATTERNS = ("cache:item:*", "cache:pad:*")


def fill_memory(client: redis.Redis, value_size: int = 1024, batch: int = 200) -> int:
    """Write until Redis refuses with OOM (needs maxmemory and noeviction); returns keys set."""
    payload = "x" * value_size
    written = 0
    while True:
        pipe = client.pipeline(transaction=False)
        for i in range(batch):
            pipe.set(f"cache:item:{written + i}", payload)
        try:
            pipe.execute()
        except redis.exceptions.OutOfMemoryError:
            return int(client.dbsize())
        written += batch
        if written > 5_000_000:
            raise RuntimeError("Redis never refused a write: is maxmemory set with noeviction?")


def fill_memory_until_refused(
    client: redis.Redis, value_size: int = 1024, settle: float = 0.2, rounds: int = 25
) -> int:
    """fill_memory, then single writes until a write made after a pause is refused too.
    Redis gives memory back a little later (idle clients' query buffers shrink in its cron),
    which would let the next client's write through; this fills that room as well, so the
    Redis stays out of memory. Returns the keys set."""
    fill_memory(client, value_size)
    payload = "x" * value_size
    padded = 0
    for _ in range(rounds):
        time.sleep(settle)
        room = False
        while True:
            try:
                client.set(f"cache:pad:{padded}", payload)
            except redis.exceptions.OutOfMemoryError:
                break
            padded += 1
            room = True
        if not room:
            break
    return int(client.dbsize())


def fill_without_ttl(client: redis.Redis, policy: str = "volatile-lru") -> int:
    """A batch job's keys, none with a TTL, until Redis refuses writes (under noeviction),
    then the volatile `policy`, and the fill goes on: the keys that have a TTL are evicted,
    then writes are refused again. Redis is then out of memory under an evicting policy with
    nothing left to evict, which a flush fixes and no policy does. Returns the keys set."""
    if not policy.startswith("volatile-"):
        raise ValueError(f"{policy}: only a volatile- policy spares keys without a TTL")
    fill_memory_until_refused(client)
    client.config_set("maxmemory-policy", policy)
    return fill_memory_until_refused(client)


def clear_fill(client: redis.Redis, policy: str, batch: int = 500) -> int:
    """Undo fill_without_ttl: delete the fills' keys (SCAN and UNLINK, both allowed while
    Redis refuses writes), then put `policy` back. Returns the keys deleted."""
    deleted = 0
    for pattern in FILL_PATTERNS:
        keys: list[bytes | str] = []
        for key in client.scan_iter(match=pattern, count=1000):
            keys.append(key)
            if len(keys) >= batch:
                deleted += int(client.unlink(*keys))
                keys = []
        if keys:
            deleted += int(client.unlink(*keys))
    client.config_set("maxmemory-policy", policy)
    return deleted


def hold_connections(
    port: int, count: int, password: str | None = None, name: str = "leaky-pool"
) -> list[redis.Redis]:
    """Open `count` named connections and keep them, like a leaking connection pool."""
    held = []
    for _ in range(count):
        conn = redis.Redis(port=port, password=password, single_connection_client=True)
        conn.client_setname(name)
        held.append(conn)
    return held


def slow_commands(client: redis.Redis, seconds: float = 0.05, count: int = 2) -> None:
    """Block the server with DEBUG SLEEP (needs enable-debug-command yes): real SLOWLOG entries."""
    for _ in range(count):
        client.execute_command("DEBUG", "SLEEP", seconds)  # type: ignore[no-untyped-call]


def break_persistence(client: redis.Redis, timeout: float = 10.0) -> None:
    """Make BGSAVE fail (the dump cannot be written), as a full or read-only disk does.
    Needs enable-protected-configs yes, since it moves `dir`."""
    client.config_set("dir", "/proc")
    client.bgsave()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == "err":
            return
        time.sleep(0.05)
    raise TimeoutError("BGSAVE did not fail as expected")
