"""Watch the cache come back: the hit rate over each sampling interval (not since start,
which a long-lived server's history would dominate), until it reaches the target or the
deadline passes. Reports the curve either way."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.redis.errors import redis_session
from activities.targets import TargetBook
from contracts.steps import StepResult
from contracts.target import RedisTarget


class HitRateActivities:
    def __init__(self, targets: TargetBook) -> None:
        self._targets = targets

    @activity.defn(name="watch_hit_rate")
    async def watch_hit_rate(
        self, target: RedisTarget, goal: float, interval_s: float, deadline_s: float
    ) -> StepResult:
        curve: dict[str, str | int | float | None] = {}
        began = time.monotonic()
        async with redis_session(target, self._targets.access(target)) as client:
            last = await _counters(client)
            while time.monotonic() - began < deadline_s:
                async with heartbeating(f"sampling the hit rate every {interval_s:g}s"):
                    await asyncio.sleep(interval_s)
                now = await _counters(client)
                hits, misses = now[0] - last[0], now[1] - last[1]
                last = now
                elapsed = round(time.monotonic() - began, 1)
                rate = hits / (hits + misses) if hits + misses else None
                curve[f"{elapsed}s"] = round(rate, 3) if rate is not None else None
                activity.heartbeat(curve)
                if rate is None:
                    return StepResult(
                        changed=False,
                        summary=f"no reads in {interval_s:g}s: nothing to watch, ended early",
                        after={**curve, "idle": 1},
                    )
                if rate is not None and rate >= goal:
                    return StepResult(
                        changed=False,
                        summary=f"hit rate {rate:.0%} reached {goal:.0%} after {elapsed}s",
                        after=curve,
                    )
        best = max((v for v in curve.values() if isinstance(v, float)), default=None)
        seen = f"{best:.0%}" if best is not None else "no traffic"
        return StepResult(
            changed=False,
            summary=f"hit rate did not reach {goal:.0%} within {deadline_s:g}s (best {seen})",
            after=curve,
        )


async def _counters(client: aioredis.Redis) -> tuple[int, int]:
    stats = await client.info("stats")
    return int(stats["keyspace_hits"]), int(stats["keyspace_misses"])
