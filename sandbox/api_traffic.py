"""The API pods' own requests, and the log `kubectl logs deployment/treebeard-api` shows.

Each API pod serves one catalog read every `interval` seconds, cache-aside, the way its
container's env says: with CACHE_ENABLED=true it reads Redis at REDIS_URL (reached as a pod
reaches a Service, sandbox.pod_network), fills the cache on a miss, and on a Redis error logs
the error and serves from the database; with CACHE_ENABLED=false it reads the database only.
So while Redis is down the API's log has the connection errors a person greps for, and after
the fallback it says the cache is off. Bounded: one request per pod per interval, a short
socket timeout, and nothing at all when the sandbox runs without API traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sandbox.cache_traffic import ITEMS, TTL_S, key
from sandbox.kube.api import KubeAPI
from sandbox.pod_network import Unreachable, reach

JSONDict = dict[str, Any]
API_CONTAINER = "api"


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def pod_env(pod: Mapping[str, Any], container: str = API_CONTAINER) -> dict[str, str]:
    for spec in pod["spec"]["containers"]:
        if spec["name"] == container:
            return {e["name"]: str(e.get("value", "")) for e in spec.get("env") or []}
    return {}


class ApiTraffic:
    """Writes each API pod's log under `root/pods/<namespace>/<pod>/api.log`."""

    def __init__(self, api: KubeAPI, root: Path, interval: float | None) -> None:
        self.api = api
        self.root = root
        self.interval = interval
        self._random = random.Random(11)
        self._weights = [1 / (i + 1) for i in range(ITEMS)]  # a few items are read most

    def log_path(self, namespace: str, pod: str) -> Path:
        return self.root / "pods" / namespace / pod / "api.log"

    def started(self, pod: JSONDict) -> None:
        """The container's first lines, written when the pod starts."""
        env = pod_env(pod)
        cache = "enabled" if env.get("CACHE_ENABLED", "true") == "true" else "disabled"
        image = pod["spec"]["containers"][0].get("image", "")
        self.write(pod, f"INFO starting {image}: cache {cache}, REDIS_URL={env.get('REDIS_URL')}")

    def write(self, pod: Mapping[str, Any], line: str) -> None:
        meta = pod["metadata"]
        path = self.log_path(meta["namespace"], meta["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(f"{stamp()} {line}\n")

    async def run(self, is_api_pod: Callable[[JSONDict], bool]) -> None:
        """Until cancelled: one request per API pod each interval."""
        if self.interval is None:
            return
        while True:
            for pod in await self.api.list_objects("pods"):
                if is_api_pod(pod) and not pod["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(OSError):
                        self.write(pod, await self.request(pod))
            await asyncio.sleep(self.interval)

    async def request(self, pod: JSONDict) -> str:
        """One GET /items/<i>, and the line the application logs for it."""
        env, item = pod_env(pod), self._random.choices(range(ITEMS), self._weights)[0]
        began = time.monotonic()
        path = f"GET /items/{item} 200"
        if env.get("CACHE_ENABLED", "true") != "true":
            return f"INFO {path} {self.db_ms()}ms cache=disabled (CACHE_ENABLED=false)"
        url = urlsplit(env.get("REDIS_URL") or "redis://redis:6379/0")
        host, port = url.hostname or "redis", url.port or 6379
        try:
            host, port = await reach(self.api, pod, host, port)
            async with aioredis.Redis(host=host, port=port, socket_timeout=0.5,
                                      socket_connect_timeout=0.5) as conn:  # fmt: skip
                if await conn.get(key(item)) is not None:
                    return f"INFO {path} {self.since(began)}ms cache=hit"
                await conn.set(key(item), f"item {item} from the database", ex=TTL_S)
                return f"INFO {path} {self.since(began) + self.db_ms()}ms cache=miss"
        except Unreachable as err:  # what redis-py raises for it
            kind = "TimeoutError" if err.errno == 110 else "ConnectionError"
            return f"ERROR redis: {kind}: {err} Served GET /items/{item} from the database"
        except (RedisError, OSError) as err:
            said = str(err).replace(f"{host}:{port}", url.netloc.rsplit("@", 1)[-1])
            return (f"ERROR redis: {type(err).__name__}: {said} Served GET /items/{item} "
                    "from the database")  # fmt: skip

    def since(self, began: float) -> int:
        return round((time.monotonic() - began) * 1000)

    def db_ms(self) -> int:
        return self._random.randint(20, 45)  # a database read, as the application reports it
