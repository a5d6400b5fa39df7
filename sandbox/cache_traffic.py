"""Application-like traffic for the sandbox: cache-aside reads of a catalog, where a few
items are far more popular than the rest, and the warmer the runbook calls after a flush.
Bounded in time and rate; for tests and the demo only."""

from __future__ import annotations

import random
import threading
import time

import redis

ITEMS = 500
CRITICAL = 50
TTL_S = 600


def key(i: int) -> str:
    return f"catalog:item:{i}"


def warm_catalog(client: redis.Redis, critical_only: bool) -> int:
    """The application's warm script: the most read items first, then the whole catalog."""
    count = CRITICAL if critical_only else ITEMS
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(key(i), f"item {i} from the database", ex=TTL_S)
    pipe.execute()
    return count


class CacheTraffic:
    """Reads through the cache; on a miss, 'loads from the database' and fills the cache."""

    def __init__(self, port: int, rate_per_s: float = 400, max_seconds: float = 120) -> None:
        self._client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        self._interval = 1 / rate_per_s
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._weights = [1 / (i + 1) for i in range(ITEMS)]
        self._random = random.Random(7)
        self.requests = 0

    def __enter__(self) -> CacheTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            i = self._random.choices(range(ITEMS), self._weights)[0]
            try:
                if self._client.get(key(i)) is None:
                    self._client.set(key(i), f"item {i} from the database", ex=TTL_S)
            except redis.RedisError:
                pass  # an outage or OOM: the application serves from the database
            self.requests += 1
            self._stop.wait(self._interval)
