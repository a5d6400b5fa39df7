"""The steps of a Sentinel-managed group that talk to Redis: forcing a failover a person
approved, checking the new master takes writes, and CONFIG changes made on every member
(a failover must not bring back the setting the incident fixed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
import redis.exceptions as rexc
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.redis.access import open_client
from activities.redis.errors import REFUSED_BY_SERVER, redis_session
from activities.redis.sentinel import (
    MasterUnavailable,
    address,
    ask_sentinels,
    command,
    named_master,
    sentinel_options,
    split,
)
from activities.targets import RedisAccess, SentinelGroup, TargetBook
from contracts.replication import is_down
from contracts.steps import StepResult
from contracts.target import RedisTarget

NOT_SENTINEL = "NotSentinelManaged"
# Sentinel refreshes a replica's INFO every 10 s and trusts none older than 5 s: just after
# the master died it may answer NOGOODSLAVE for a while, which is not a refusal.
NO_GOOD_REPLICA_WAIT_S = 20.0
PROBE_KEY = "redis-runbook:probe:{stamp}"


def _group(access: RedisAccess, step: str) -> SentinelGroup:
    if access.sentinel is None:
        raise ApplicationError(
            f"{step} is for a Sentinel-managed target; this one has no `sentinel:` configured",
            type=NOT_SENTINEL,
            non_retryable=True,
        )
    return access.sentinel


async def replica_addresses(access: RedisAccess) -> list[tuple[str, int]]:
    """The replicas the Sentinels know and do not flag as down."""
    if access.sentinel is None:
        return []
    _, replicas = await ask_sentinels(access.sentinel, access)
    return [
        (r.get("ip", ""), int(r.get("port", 0)))
        for r in replicas
        if not is_down(r.get("flags", ""))
    ]


async def config_on_replicas(
    target: RedisTarget, access: RedisAccess, wanted: dict[str, str]
) -> dict[str, str]:
    """CONFIG SET on each replica, so the member a failover promotes runs with it too; a
    replica that refuses or does not answer is named, not hidden."""
    done = {}
    for host, port in await replica_addresses(access):
        client = open_client(target, access, (host, port))
        try:
            for key, value in wanted.items():
                await client.config_set(key, value)
            done[address(host, port)] = "set"
        except (rexc.RedisError, OSError) as err:
            done[address(host, port)] = f"not set: {err}"[:120]
        finally:
            with contextlib.suppress(rexc.RedisError, OSError):
                await client.aclose()
    return done


class NoGoodReplica(MasterUnavailable):
    """NOGOODSLAVE: no replica Sentinel would promote yet; retryable."""


class SentinelActivities:
    """Bound to the worker's targets: only a configured group's Sentinels are ever asked."""

    def __init__(self, targets: TargetBook) -> None:
        self._targets = targets

    @activity.defn(name="verify_writes")
    async def verify_writes(self, target: RedisTarget, stamp: str) -> StepResult:
        """A write, read back and removed, on the master the Sentinels name now: the proof a
        failover finished that a PING is not (a replica answers PING, and refuses writes)."""
        access = self._targets.access(target)
        _group(access, "verify_writes")
        key = PROBE_KEY.format(stamp=stamp)
        began = time.perf_counter()
        async with redis_session(target, access) as client:
            await client.set(key, stamp, px=60_000)
            read = await client.get(key)
            await client.delete(key)
            where = client.connection_pool.connection_kwargs
        if read != stamp:
            raise MasterUnavailable(f"wrote {key} and read back {read!r}")
        ms = round((time.perf_counter() - began) * 1000, 1)
        master = address(where.get("host", "?"), where.get("port", "?"))
        return StepResult(
            changed=False,
            summary=f"the master {master} took a write (SET, GET, DEL in {ms} ms)",
            after={"master": master, "ok": 1},
        )

    @activity.defn(name="sentinel_failover")
    async def sentinel_failover(self, target: RedisTarget) -> StepResult:
        """SENTINEL FAILOVER on the first Sentinel that answers: it promotes a replica without
        asking the others, which is what a lost quorum needs. Nothing is forced while the
        master the Sentinels name answers (it may have come back since the approval)."""
        access = self._targets.access(target)
        group = _group(access, "sentinel_failover")
        views, _ = await ask_sentinels(group, access, full=False)
        master = named_master(views)
        flagged = any(v.sees_master_down for v in views)
        if master is not None and not flagged and await _answers(target, access, master):
            return StepResult(
                changed=False,
                summary=f"the master {master} answers again: no failover forced",
                after={"master": master},
            )
        live = [v.address for v in views if v.reachable]
        deadline = time.monotonic() + NO_GOOD_REPLICA_WAIT_S
        while True:
            try:
                return await _force(group, access, live, master)
            except NoGoodReplica:
                if time.monotonic() >= deadline:
                    raise
                activity.heartbeat("Sentinel has no replica it trusts yet (NOGOODSLAVE)")
                await asyncio.sleep(0.5)


async def _answers(target: RedisTarget, access: RedisAccess, master: str) -> bool:
    client = open_client(target, access, split(master))
    try:
        return bool(await client.ping())
    except (rexc.RedisError, OSError):
        return False
    finally:
        with contextlib.suppress(rexc.RedisError, OSError):
            await client.aclose()


async def _force(
    group: SentinelGroup, access: RedisAccess, live: list[str], master: str | None
) -> StepResult:
    if not live:
        raise MasterUnavailable(f"no Sentinel of {group.master_name} answers to fail over")
    refused = []
    for sentinel in live:
        host, port = split(sentinel)
        client = aioredis.Redis(host=host, port=port, **sentinel_options(group, access))
        try:
            await command(client, "SENTINEL", "FAILOVER", group.master_name)
        except rexc.ResponseError as err:
            if "INPROG" in str(err):
                return _forced(sentinel, master, "a failover was already in progress")
            refused.append(f"{sentinel}: {err}")
            continue
        except (rexc.RedisError, OSError) as err:
            refused.append(f"{sentinel}: {err}")
            continue
        finally:
            await client.aclose()
        return _forced(sentinel, master, "accepted")
    if any("NOGOODSLAVE" in r for r in refused):
        raise NoGoodReplica("SENTINEL FAILOVER refused: " + "; ".join(refused))
    raise ApplicationError(
        "SENTINEL FAILOVER refused: " + "; ".join(refused),
        type=REFUSED_BY_SERVER,
        non_retryable=True,
    )


def _forced(sentinel: str, master: str | None, how: str) -> StepResult:
    return StepResult(
        changed=True,
        summary=f"SENTINEL FAILOVER sent to {sentinel}: {how} (master was {master or 'unknown'})",
        before={"master": master},
        after={"sentinel": sentinel},
    )
