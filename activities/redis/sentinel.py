"""Asking a target's Sentinels: where the master is, whether they can fail over, and what
every member says of its replication.

The master is always found afresh, at the moment a connection is made: a failover may have
moved it since the last look, and a command meant for the master must never reach a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from activities.redis.options import client_options, member_access, url_at
from activities.targets import RedisAccess, SentinelGroup
from contracts.replication import Member, ReplicationFacts, SentinelView, linked
from contracts.target import RedisTarget


class MasterUnavailable(rexc.ConnectionError):
    """No Sentinel names a master that answers: triage's finding, a step's retryable error."""


async def command(client: aioredis.Redis, *args: str) -> Any:
    """A command redis-py has no typed method for (SENTINEL CKQUORUM, ROLE)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def address(host: str, port: int | str) -> str:
    return f"{host}:{port}"


def split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def _pairs(raw: Any) -> dict[str, str]:
    """SENTINEL MASTER/REPLICAS answer flat [key, value, ...] lists."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    items = [x.decode() if isinstance(x, bytes) else str(x) for x in raw or []]
    return dict(zip(items[::2], items[1::2], strict=False))


def sentinel_options(
    group: SentinelGroup, access: RedisAccess, sync: bool = False
) -> dict[str, Any]:
    """One try per connection: a Sentinel that is down is a fact to record, not to retry
    (redis-py's default retries a refused connection with backoff, seconds per look)."""
    return {
        "retry": Retry(NoBackoff(), 0) if sync else AsyncRetry(NoBackoff(), 0),
        "password": group.password.get_secret_value() if group.password else None,
        "socket_connect_timeout": access.connect_timeout.total_seconds(),
        "socket_timeout": access.command_timeout.total_seconds(),
        "decode_responses": True,
        "protocol": 2,
    }


def _view(where: str, state: dict[str, str], quorum: str = "") -> SentinelView:
    """A Sentinel's SENTINEL MASTER answer (and its CKQUORUM, when asked), typed."""
    flags = state.get("flags", "")
    return SentinelView(
        address=where,
        reachable=True,
        master=address(state.get("ip", "?"), state.get("port", "0")),
        flags=flags,
        quorum=int(state.get("quorum", 0)),
        other_sentinels=int(state.get("num-other-sentinels", 0)),
        quorum_ok=quorum.startswith("OK"),
        quorum_message=quorum,
        failover_state="in_progress" if "failover_in_progress" in flags else "",
        down_after_ms=int(state.get("down-after-milliseconds", 0)),
        failover_timeout_ms=int(state.get("failover-timeout", 0)),
    )


async def _ask(
    host: str, port: int, group: SentinelGroup, access: RedisAccess, full: bool
) -> tuple[SentinelView, list[dict[str, str]]]:
    """One Sentinel's view of the master; `full`: with its quorum and the replicas it knows
    (triage's look), else the master alone (finding where to send a command)."""
    where = address(host, port)
    client = aioredis.Redis(host=host, port=port, **sentinel_options(group, access))
    replicas: list[Any] = []
    quorum = ""
    try:
        state = _pairs(await command(client, "SENTINEL", "MASTER", group.master_name))
        if full:
            replicas = await command(client, "SENTINEL", "REPLICAS", group.master_name) or []
            try:
                quorum = str(await command(client, "SENTINEL", "CKQUORUM", group.master_name))
            except rexc.ResponseError as err:
                quorum = str(err)
    except (rexc.RedisError, OSError) as err:
        failed = SentinelView(address=where, reachable=False, error=f"{type(err).__name__}: {err}")
        return failed, []
    finally:
        await client.aclose()
    return _view(where, state, quorum), [_pairs(r) for r in replicas]


async def ask_sentinels(
    group: SentinelGroup, access: RedisAccess, full: bool = True
) -> tuple[list[SentinelView], list[dict[str, str]]]:
    """Every Sentinel at once; the replicas as the first one that answered knows them."""
    answers = await asyncio.gather(*(_ask(h, p, group, access, full) for h, p in group.addresses))
    views = [view for view, _ in answers]
    replicas = next((found for view, found in answers if view.reachable), [])
    return views, replicas


def named_master(views: list[SentinelView]) -> str | None:
    """The address a majority of the reachable Sentinels name; None when they split (a
    Sentinel left behind by a failover still names the old master for a moment)."""
    named = Counter(v.master for v in views if v.reachable and v.master)
    reachable = sum(1 for v in views if v.reachable)
    if not named:
        return None
    master, count = named.most_common(1)[0]
    return master if count * 2 > reachable else None


def _usable(group: SentinelGroup, views: list[SentinelView]) -> tuple[str, int]:
    """The master to send a command to, or MasterUnavailable saying why there is none."""
    master = named_master(views)
    if master is None:
        said = "; ".join(f"{v.address}: {v.master or v.error}" for v in views)
        raise MasterUnavailable(f"the Sentinels of {group.master_name} name no master ({said})")
    down = [v for v in views if v.master == master and v.sees_master_down]
    if down:
        raise MasterUnavailable(
            f"Sentinel {down[0].address} flags the master {master} as down ({down[0].flags})"
        )
    return split(master)


async def master_address(group: SentinelGroup, access: RedisAccess) -> tuple[str, int]:
    """The master to send a command to, or MasterUnavailable saying why there is none."""
    views, _ = await ask_sentinels(group, access, full=False)
    return _usable(group, views)


def master_address_sync(group: SentinelGroup, access: RedisAccess) -> tuple[str, int]:
    """The same, for code on a thread."""
    views = []
    for host, port in group.addresses:
        where = address(host, port)
        try:
            options = sentinel_options(group, access, sync=True)
            with redis.Redis(host=host, port=port, **options) as conn:
                state = _pairs(conn.execute_command("SENTINEL", "MASTER", group.master_name))
        except (redis.RedisError, OSError) as err:
            views.append(SentinelView(address=where, reachable=False, error=str(err)[:200]))
            continue
        views.append(_view(where, state))
    return _usable(group, views)


def sentinels_see_up_sync(group: SentinelGroup, access: RedisAccess, member: str) -> bool:
    """Every Sentinel that answers lists `member` among the replicas without a down flag:
    only then would they promote it in the next failover."""
    seen = False
    for host, port in group.addresses:
        try:
            options = sentinel_options(group, access, sync=True)
            with redis.Redis(host=host, port=port, **options) as conn:
                replicas = conn.execute_command("SENTINEL", "REPLICAS", group.master_name)
        except (redis.RedisError, OSError):
            continue
        states = {address(r.get("ip", ""), r.get("port", "")): r for r in map(_pairs, replicas)}
        if member not in states or not linked(states[member].get("flags", "")):
            return False
        seen = True
    return seen


def replica_lags(info: dict[str, Any]) -> dict[str, int]:
    """The master's INFO replication: slaveN:ip=...,port=...,lag=N, by replica address. A
    replica that reconnected may be listed twice for a moment (the old link not yet gone):
    the smaller lag is its own."""
    lags: dict[str, int] = {}
    for key, value in info.items():
        if key.startswith("slave") and isinstance(value, dict) and "ip" in value:
            where = address(value["ip"], value.get("port", 0))
            lag = int(value.get("lag", 0))
            lags[where] = min(lag, lags.get(where, lag))
    return lags


async def _read_member(
    target: RedisTarget, member: Member, access: RedisAccess
) -> tuple[Member, dict[str, int]]:
    """The member's own INFO replication, and (a master's) its replicas' lag; over TLS with
    the target's certificates when its URL is rediss://."""
    client = aioredis.Redis.from_url(
        url_at(target, split(member.address)),
        **client_options(target, member_access(access)),
        retry=AsyncRetry(NoBackoff(), 0),
        decode_responses=True,
        protocol=2,
    )
    try:
        info = await client.info("replication")
    except (rexc.RedisError, OSError) as err:
        return member.model_copy(update={"reachable": False, "error": f"{err}"[:200]}), {}
    finally:
        with contextlib.suppress(rexc.RedisError, OSError):
            await client.aclose()
    offset = info.get("master_repl_offset") if info.get("role") == "master" else None
    return member.model_copy(
        update={
            "reachable": True,
            "role": str(info.get("role", "")),
            "master_link_status": info.get("master_link_status"),
            "offset": int(offset if offset is not None else info.get("slave_repl_offset", 0)),
        }
    ), replica_lags(info)


async def replication_facts(
    target: RedisTarget, group: SentinelGroup, access: RedisAccess
) -> ReplicationFacts:
    """The Sentinels' views, then INFO replication on every member they know, at once."""
    views, replicas = await ask_sentinels(group, access)
    master = named_master(views)
    flags = next((v.flags for v in views if v.reachable and v.master == master), "")
    members = [Member(address=master, named_master=True, flags=flags)] if master else []
    members += [
        Member(address=address(r.get("ip", "?"), r.get("port", "0")), flags=r.get("flags", ""))
        for r in replicas
    ]
    read = await asyncio.gather(*(_read_member(target, m, access) for m in members))
    lags = next((lag for m, lag in read if m.named_master), {})
    members = [
        m.model_copy(update={"lag_s": None if m.named_master else lags.get(m.address)})
        for m, _ in read
    ]
    return ReplicationFacts(
        master_name=group.master_name,
        master=master,
        master_service=group.master_service,
        sentinels=views,
        members=members,
    )
