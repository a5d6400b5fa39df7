"""The runbook's Redis-side actions. Each reads before it writes and sets absolute values, so
a retried attempt finds the work done and changes nothing more."""

from __future__ import annotations

import asyncio
import re
import time

import redis.asyncio as aioredis
import redis.exceptions as rexc
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.redis.errors import REFUSED_BY_POLICY, redis_session
from activities.redis.failover import config_on_replicas
from activities.targets import TargetBook
from contracts.steps import StepResult
from contracts.target import RedisTarget

EVICTION_POLICIES = ("allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-lfu")
PERSISTENCE_KEYS = ("save", "stop-writes-on-bgsave-error", "rdbcompression")
LAZYFREE_WAIT_S = 30.0


TRY_WITH = re.compile(r"try with (\d+)")


async def _set_maxclients(client: aioredis.Redis, wanted: int, current: int) -> None:
    """CONFIG SET maxclients; past the process' file limit Redis refuses and names the most
    it can take, which is still a raise when it is above the current value."""
    try:
        await client.config_set("maxclients", wanted)
    except rexc.ResponseError as err:
        most = TRY_WITH.search(str(err))
        if most is None or int(most[1]) <= current:
            raise
        await client.config_set("maxclients", int(most[1]))


async def _flushed_since(
    client: aioredis.Redis, server_run_id: str, flushes_before: int
) -> StepResult | None:
    if not server_run_id or flushes_before < 0:
        return None
    run_id = str((await client.info("server")).get("run_id", ""))
    stats = await client.info("commandstats")
    calls = int((stats.get("cmdstat_flushdb") or {}).get("calls", 0))
    if run_id != server_run_id or calls <= flushes_before:
        return None
    keys = int(await client.dbsize())
    return StepResult(
        changed=False,
        summary=f"FLUSHDB already ran ({calls - flushes_before} since the step began): an "
        "earlier attempt did it; not sent again",
        after={"keys": keys, "flushdb_calls": calls},
    )


RUNTIME_ONLY = "runtime only: lost at the next restart"


async def _make_durable(client: aioredis.Redis) -> str:
    """CONFIG REWRITE where Redis runs from a config file it may write; otherwise say the
    change lives in memory only, so the report can tell a person."""
    config_file = str((await client.info("server")).get("config_file") or "")
    if not config_file:
        return f"{RUNTIME_ONLY} (no config file: put it in the Redis config)"
    try:
        await client.config_rewrite()
    except rexc.ResponseError as err:
        return f"{RUNTIME_ONLY} (CONFIG REWRITE of {config_file} failed: {err})"
    return f"written to {config_file}"


def _beat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


class RedisRemediationActivities:
    def __init__(self, targets: TargetBook) -> None:
        self._targets = targets

    @activity.defn(name="ping")
    async def ping(self, target: RedisTarget) -> StepResult:
        """A probe: a Redis that does not answer is a result, not an error."""
        began = time.perf_counter()
        try:
            async with redis_session(target, self._targets.access(target)) as client:
                await client.ping()
        except Exception as err:
            return StepResult(changed=False, summary=f"no answer: {err}", after={"ok": 0})
        ms = round((time.perf_counter() - began) * 1000, 2)
        return StepResult(changed=False, summary=f"PONG in {ms} ms", after={"ok": 1, "ms": ms})

    @activity.defn(name="memory_purge")
    async def memory_purge(self, target: RedisTarget) -> StepResult:
        async with redis_session(target, self._targets.access(target)) as client:
            before = await client.info("memory")
            await client.memory_purge()
            after = await client.info("memory")
        keys = ("used_memory_rss", "mem_fragmentation_ratio")
        return StepResult(
            changed=True,
            summary=f"fragmentation {before['mem_fragmentation_ratio']} -> "
            f"{after['mem_fragmentation_ratio']}",
            before={k: before.get(k) for k in keys},
            after={k: after.get(k) for k in keys},
        )

    @activity.defn(name="flush")
    async def flush(
        self, target: RedisTarget, server_run_id: str = "", flushes_before: int = -1
    ) -> StepResult:
        """FLUSHDB of the target's database only, in the background (ASYNC) so Redis keeps
        answering; waits until the memory is actually given back. FLUSHALL is never used.
        Exactly once: given the server's run_id and its FLUSHDB count from the diagnosis
        before the step, an attempt that finds the count grown on the same server run knows
        an earlier attempt (whose answer was lost) already flushed, and flushes nothing."""
        async with redis_session(target, self._targets.access(target)) as client:
            done = await _flushed_since(client, server_run_id, flushes_before)
            if done is not None:
                return done
            keys_before = int(await client.dbsize())
            used_before = (await client.info("memory"))["used_memory"]
            await client.flushdb(asynchronous=True)
            deadline = time.monotonic() + LAZYFREE_WAIT_S
            while time.monotonic() < deadline:
                memory = await client.info("memory")
                if not memory.get("lazyfree_pending_objects"):
                    break
                _beat("waiting for lazy free")
                await asyncio.sleep(0.1)
            keys_after = int(await client.dbsize())
        return StepResult(
            changed=keys_before > 0,
            summary=f"FLUSHDB db{target.db}: {keys_before} keys removed",
            before={"keys": keys_before, "used_memory": used_before},
            after={"keys": keys_after, "used_memory": memory["used_memory"]},
        )

    @activity.defn(name="set_eviction_policy")
    async def set_eviction_policy(self, target: RedisTarget, policy: str) -> StepResult:
        if policy not in EVICTION_POLICIES:
            raise ApplicationError(
                f"{policy!r} is not an evicting policy ({', '.join(EVICTION_POLICIES)})",
                type=REFUSED_BY_POLICY,
                non_retryable=True,
            )
        return await self._set_config(target, {"maxmemory-policy": policy})

    @activity.defn(name="raise_maxclients")
    async def raise_maxclients(self, target: RedisTarget, ceiling: int) -> StepResult:
        """Raise to what the plan asks; when the OS cannot give Redis that many, take the
        largest value Redis names ("try with N"). Never lower a limit someone raised."""
        async with redis_session(target, self._targets.access(target)) as client:
            current = int((await client.config_get("maxclients"))["maxclients"] or 0)
            if current >= ceiling:
                return StepResult(
                    changed=False,
                    summary=f"maxclients already {current} (ceiling {ceiling})",
                    before={"maxclients": current},
                    after={"maxclients": current},
                )
            await _set_maxclients(client, ceiling, current)
            now = int((await client.config_get("maxclients"))["maxclients"] or 0)
            durable = await _make_durable(client)
        return StepResult(
            changed=now != current,
            summary=f"maxclients {current} -> {now}"
            + ("" if now == ceiling else f" (asked {ceiling}: the most the OS allows Redis)"),
            before={"maxclients": current},
            after={"maxclients": now, "durable": durable},
        )

    @activity.defn(name="tune_persistence")
    async def tune_persistence(
        self, target: RedisTarget, settings: dict[str, str | int | float]
    ) -> StepResult:
        unknown = set(settings) - set(PERSISTENCE_KEYS)
        if unknown:
            raise ApplicationError(
                f"tune_persistence only sets {', '.join(PERSISTENCE_KEYS)}; refused {unknown}",
                type=REFUSED_BY_POLICY,
                non_retryable=True,
            )
        return await self._set_config(target, {k: str(v) for k, v in settings.items()})

    async def _set_config(self, target: RedisTarget, wanted: dict[str, str]) -> StepResult:
        """CONFIG SET only what differs from the live value, and report both sides; on a
        Sentinel-managed group, on the master and then on every replica."""
        access = self._targets.access(target)
        async with redis_session(target, access) as client:
            before = {k: (await client.config_get(k)).get(k) for k in wanted}
            for key, value in wanted.items():
                if before[key] != value:
                    await client.config_set(key, value)
            after = {k: (await client.config_get(k)).get(k) for k in wanted}
            changed = [k for k in wanted if before[k] != after[k]]
            durable = await _make_durable(client) if changed else "unchanged"
        members = await config_on_replicas(target, access, {k: str(after[k]) for k in wanted})
        summary = ", ".join(f"{k} {before[k]!r} -> {after[k]!r}" for k in changed)
        if members:
            summary += "; on the replicas: " + ", ".join(f"{a} {r}" for a, r in members.items())
        if changed and durable.startswith(RUNTIME_ONLY):
            summary += f" ({RUNTIME_ONLY})"
        return StepResult(
            changed=bool(changed),
            summary=summary or "already set: " + ", ".join(f"{k} {v!r}" for k, v in after.items()),
            before=dict(before),
            after={**after, "durable": durable, **({"replicas": len(members)} if members else {})},
        )
