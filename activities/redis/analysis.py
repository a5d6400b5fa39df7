"""Read-only evidence for the person who approves: what is slow, who holds the connections,
which keys fill the memory. Bounded work only: a struggling Redis must not be made worse."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import redis.exceptions as rexc
from temporalio import activity

from activities.redis.errors import redis_session
from activities.targets import TargetBook
from contracts.analysis import (
    BigKey,
    ClientGroup,
    ClientReport,
    CommandStat,
    KeyspaceReport,
    Offender,
    PrefixStat,
    SlowlogReport,
)
from contracts.finding import Finding
from contracts.target import RedisTarget

ADVICE = {
    "KEYS": "replace KEYS with SCAN",
    "SMEMBERS": "large set read whole: page it with SSCAN",
    "HGETALL": "large hash read whole: page it with HSCAN or read the fields you need",
    "LRANGE": "large list range: read it in windows",
    "ZRANGE": "large sorted-set range: page it (ZRANGE ... LIMIT) or ZSCAN",
    "ZRANGEBYSCORE": "large sorted-set range: add LIMIT",
    "SUNION": "set algebra on large sets: precompute it",
    "SINTER": "set algebra on large sets: precompute it",
    "SORT": "SORT on a large collection: keep a sorted set instead",
    "EVAL": "Lua script blocks the server while it runs: bound its loop or split it",
    "EVALSHA": "Lua script blocks the server while it runs: bound its loop or split it",
    "FCALL": "function blocks the server while it runs: bound its loop or split it",
    "DEL": "deleting a big key blocks: use UNLINK",
    "FLUSHDB": "use FLUSHDB ASYNC",
    "FLUSHALL": "use FLUSHALL ASYNC (and never in production by hand)",
    "SAVE": "SAVE blocks: use BGSAVE",
    "DEBUG": "DEBUG commands do not belong in production traffic",
}
SAMPLE_BATCH = 100


def _advice(command: str) -> str:
    return ADVICE.get(command, "slow command: check its argument sizes")


def summarise_slowlog(entries: list[dict[str, Any]], threshold_ms: float) -> SlowlogReport:
    stats: dict[str, list[float]] = defaultdict(list)
    offenders = []
    for entry in entries:
        text = entry.get("command", "")
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        name = (text.split() or ["?"])[0].upper()
        ms = int(entry["duration"]) / 1000
        stats[name].append(ms)
        if ms >= threshold_ms:
            offenders.append(Offender(command=text[:200], duration_ms=ms, advice=_advice(name)))
    top = sorted(
        (
            CommandStat(command=n, count=len(v), total_ms=sum(v), worst_ms=max(v))
            for n, v in stats.items()
        ),
        key=lambda c: c.total_ms,
        reverse=True,
    )
    offenders.sort(key=lambda o: o.duration_ms, reverse=True)
    return SlowlogReport(entries=len(entries), top_commands=top[:10], offenders=offenders[:10])


def group_clients(clients: list[dict[str, Any]], own_id: int) -> ClientReport:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for client in clients:
        if int(client.get("id", -1)) == own_id:
            continue
        host = str(client.get("addr", "?")).rsplit(":", 1)[0]
        groups[(host, str(client.get("name", "")))].append(client)
    total = sum(len(g) for g in groups.values())
    report = ClientReport(total=total)
    for (host, name), members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:20]:
        report.groups.append(
            ClientGroup(
                address=host,
                name=name,
                connections=len(members),
                idle_max_s=max(int(m.get("idle", 0)) for m in members),
                commands=sorted({str(m.get("cmd", "")) for m in members})[:5],
            )
        )
    if report.groups and total >= 10 and report.groups[0].connections * 2 > total:
        top = report.groups[0]
        report.findings.append(
            Finding(
                code="connection_leak_suspect",
                message=f"{top.connections} of {total} connections come from {top.address} "
                f"named {top.name or '(no name)'}: check that client's pool size and closing",
            )
        )
    return report


def prefix_of(key: str) -> str:
    """cache:item:123 -> cache:item, user:42 -> user, plain -> plain."""
    parts = key.split(":")
    return ":".join(parts[: min(2, len(parts) - 1)]) if len(parts) > 1 else key


class RedisAnalysisActivities:
    def __init__(self, targets: TargetBook, slow_ms: float = 10.0, sample: int = 1000) -> None:
        self._targets = targets
        self._slow_ms = slow_ms
        self._sample = sample

    @activity.defn(name="slowlog_report")
    async def slowlog_report(self, target: RedisTarget) -> SlowlogReport:
        async with redis_session(target, self._targets.access(target)) as client:
            try:
                entries = await client.slowlog_get(128)
            except rexc.ResponseError as err:
                return SlowlogReport(
                    entries=0, findings=[Finding(code="slowlog_unavailable", message=str(err))]
                )
        return summarise_slowlog(entries, self._slow_ms)

    @activity.defn(name="client_report")
    async def client_report(self, target: RedisTarget) -> ClientReport:
        async with redis_session(target, self._targets.access(target)) as client:
            try:
                own_id = int(await client.client_id())
                clients = await client.client_list()
            except rexc.ResponseError as err:
                return ClientReport(
                    total=0, findings=[Finding(code="client_list_unavailable", message=str(err))]
                )
        return group_clients(clients, own_id)

    @activity.defn(name="keyspace_report")
    async def keyspace_report(self, target: RedisTarget) -> KeyspaceReport:
        async with redis_session(target, self._targets.access(target)) as client:
            dbsize = int(await client.dbsize())
            keys: list[str] = []
            cursor = 0
            while len(keys) < self._sample:
                cursor, batch = await client.scan(cursor, count=SAMPLE_BATCH)
                keys.extend(str(k) for k in batch[: self._sample - len(keys)])
                if activity.in_activity():
                    activity.heartbeat(len(keys))
                if cursor == 0:
                    break
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key)
                pipe.ttl(key)
            try:
                raw = await pipe.execute(raise_on_error=True)
            except rexc.ResponseError as err:
                return KeyspaceReport(
                    sampled=len(keys), dbsize=dbsize, sampled_bytes=0, without_ttl=0,
                    findings=[Finding(code="memory_usage_unavailable", message=str(err))],
                )  # fmt: skip
        return _keyspace(keys, raw, dbsize)


def _keyspace(keys: list[str], raw: list[Any], dbsize: int) -> KeyspaceReport:
    sizes = [int(v or 0) for v in raw[0::2]]
    ttls = [int(v) for v in raw[1::2]]
    prefixes: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, size, ttl in zip(keys, sizes, ttls, strict=True):
        stat = prefixes[prefix_of(key)]
        stat[0] += 1
        stat[1] += size
        stat[2] += ttl < 0
    no_ttl = sum(ttl < 0 for ttl in ttls)
    report = KeyspaceReport(
        sampled=len(keys),
        dbsize=dbsize,
        sampled_bytes=sum(sizes),
        without_ttl=no_ttl,
        prefixes=[
            PrefixStat(prefix=p, keys=k, bytes=b, without_ttl=n)
            for p, (k, b, n) in sorted(prefixes.items(), key=lambda kv: -kv[1][1])[:20]
        ],
        biggest=[
            BigKey(key=k, bytes=b, ttl_s=t)
            for k, b, t in sorted(zip(keys, sizes, ttls, strict=True), key=lambda x: -x[1])[:10]
        ],
    )
    if keys and no_ttl * 2 > len(keys):
        report.findings.append(
            Finding(
                code="keys_without_ttl",
                message=f"{no_ttl} of {len(keys)} sampled keys have no TTL: cache keys should "
                "expire, or only allkeys-* eviction can free them",
            )
        )
    return report
