"""Triage of one Redis: the runbook's first five minutes (ping, INFO, SLOWLOG, DBSIZE).

Whatever goes wrong while reaching Redis is a *finding* in the diagnosis, not an exception:
an unreachable Redis is exactly what the workflow has to classify, so it must not look like a
failed activity that Temporal would retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import statistics
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from temporalio import activity

from activities.redis.access import open_client
from activities.redis.group import group_findings, usable_master
from activities.redis.sentinel import replication_facts, split
from activities.targets import RedisAccess, TargetBook
from contracts.diagnosis import Diagnosis, RedisInfo, SlowlogEntry
from contracts.finding import Finding
from contracts.target import RedisTarget

SLOWLOG_FETCH = 128
DNS_FAILURES = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated",
    "getaddrinfo",
)


def _refused(err: BaseException) -> bool:
    """Connection refused, whether redis-py kept the OSError as the cause or only its text."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(err).lower()
    return "refused" in text or f"error {errno.ECONNREFUSED} " in text


def finding_for(err: Exception) -> Finding:
    """Name the way Redis could not be reached, so classify and a person can both act on it."""
    text = str(err)
    lowered = text.lower()
    if isinstance(err, rexc.BusyLoadingError):
        return Finding(code="loading", message=f"Redis is loading its dataset: {text}")
    if isinstance(err, rexc.AuthenticationError | rexc.AuthenticationWrongNumberOfArgsError) or (
        "noauth" in lowered or "wrongpass" in lowered
    ):
        return Finding(
            code="auth_failed",
            message=f"authentication failed ({text}): set the worker's RUNBOOK_REDIS_PASSWORD",
        )
    if "max number of clients reached" in lowered:
        return Finding(code="max_clients_reached", message=f"Redis refused a connection: {text}")
    if isinstance(err, rexc.TimeoutError | TimeoutError):
        return Finding(code="timeout", message=f"Redis did not answer in time: {text}")
    if _refused(err):
        return Finding(code="connection_refused", message=f"nothing listens there: {text}")
    if "ssl" in lowered or "certificate" in lowered:
        hint = (
            " (the server wants a client certificate: the target's tls.cert_file and key_file)"
            if "certificate required" in lowered.replace("_", " ")
            else ""
        )
        return Finding(code="tls_error", message=f"TLS handshake failed: {text}{hint}")
    if any(hint in lowered for hint in DNS_FAILURES):
        return Finding(code="dns_failure", message=f"the worker cannot resolve the host: {text}")
    return Finding(code="unreachable", message=f"{type(err).__name__}: {text}")


async def server_greeting(
    target: RedisTarget, access: RedisAccess, wait: float = 0.5
) -> str | None:
    """What Redis says unprompted before closing: "max number of clients reached" over plain
    TCP, or over TLS the alert a server that demands a client certificate sends once the
    handshake is done ("certificate required"). redis-py only reports the closed socket."""
    parts = urlsplit(target.redis_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return None
    tls = _tls_context(access) if parts.scheme == "rediss" else None
    with contextlib.suppress(OSError, TimeoutError):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port or 6379, ssl=tls), wait
            )
            try:
                data = await asyncio.wait_for(reader.read(256), wait)
            finally:
                writer.close()
        except ssl.SSLError as err:
            return f"SSL: {err.reason or err}"
        if data.startswith(b"-"):
            return data[1:].decode(errors="replace").strip()
    return None


def _tls_context(access: RedisAccess) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(access.tls_ca_file) if access.tls_ca_file else None
    )
    if access.tls_cert_file and access.tls_key_file:
        context.load_cert_chain(str(access.tls_cert_file), str(access.tls_key_file))
    return context


def _int(raw: dict[str, Any], key: str) -> int:
    try:
        return int(raw.get(key, 0))
    except (TypeError, ValueError):
        return 0


def parse_info(raw: dict[str, Any], db: int) -> RedisInfo:
    """Keep the fields the runbook reads; a missing field reads as its neutral value."""
    keyspace = raw.get(f"db{db}") or {}
    return RedisInfo(
        redis_version=str(raw.get("redis_version", "")),
        run_id=str(raw.get("run_id", "")),
        role=str(raw.get("role", "")),
        uptime_seconds=_int(raw, "uptime_in_seconds"),
        used_memory=_int(raw, "used_memory"),
        maxmemory=_int(raw, "maxmemory"),
        maxmemory_policy=str(raw.get("maxmemory_policy", "")),
        mem_fragmentation_ratio=float(raw.get("mem_fragmentation_ratio", 0) or 0),
        connected_clients=_int(raw, "connected_clients"),
        maxclients=_int(raw, "maxclients"),
        rejected_connections=_int(raw, "rejected_connections"),
        blocked_clients=_int(raw, "blocked_clients"),
        evicted_keys=_int(raw, "evicted_keys"),
        oom_errors=_int(raw.get("errorstat_OOM") or {}, "count"),
        flushdb_calls=_int(raw.get("cmdstat_flushdb") or {}, "calls")
        if "cmdstat_flushdb" in raw or "cmdstat_ping" in raw
        else -1,
        keyspace_hits=_int(raw, "keyspace_hits"),
        keyspace_misses=_int(raw, "keyspace_misses"),
        rdb_bgsave_in_progress=_int(raw, "rdb_bgsave_in_progress"),
        aof_rewrite_in_progress=_int(raw, "aof_rewrite_in_progress"),
        rdb_last_bgsave_status=str(raw.get("rdb_last_bgsave_status", "ok")),
        aof_last_write_status=str(raw.get("aof_last_write_status", "ok")),
        latest_fork_usec=_int(raw, "latest_fork_usec"),
        total_forks=_int(raw, "total_forks"),
        save=raw.get("config_save"),
        aof_enabled=_int(raw, "aof_enabled"),
        connected_slaves=_int(raw, "connected_slaves"),
        master_link_status=raw.get("master_link_status"),
        keys=_int(keyspace, "keys") if isinstance(keyspace, dict) else 0,
        expires=_int(keyspace, "expires") if isinstance(keyspace, dict) else 0,
    )


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile: exact for the handful of samples triage takes."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _sample_pings(client: aioredis.Redis, count: int, findings: list[Finding]) -> list[float]:
    """PING latency. A master whose last save failed refuses PING with MISCONF (and every
    write) while INFO still answers: that is a persistence finding, not an outage."""
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        try:
            await client.ping()
        except rexc.ResponseError as err:
            if not str(err).startswith("MISCONF"):
                raise
            findings.append(Finding(code="persistence_blocking_writes", message=str(err)))
            return []
        samples.append(round((time.perf_counter() - began) * 1000, 3))
    return samples


async def _errorstats(client: aioredis.Redis) -> dict[str, Any]:
    """INFO errorstats (Redis 6.2+: errorstat_OOM counts writes refused for memory) and
    commandstats (how many FLUSHDBs the server ran: a retried flush must not flush twice)."""
    found: dict[str, Any] = {}
    for section in ("errorstats", "commandstats"):
        try:
            found.update(await client.info(section))
        except rexc.ResponseError:
            continue
    with contextlib.suppress(rexc.ResponseError):  # snapshots on? a plan never turns them on
        found["config_save"] = (await client.config_get("save")).get("save")
    return found


async def _slowlog(client: aioredis.Redis, findings: list[Finding]) -> list[SlowlogEntry]:
    try:
        raw = await client.slowlog_get(SLOWLOG_FETCH)
    except rexc.ResponseError as err:
        findings.append(Finding(code="slowlog_unavailable", message=str(err)))
        return []
    entries = []
    for item in raw:
        command = item.get("command", "")
        if isinstance(command, bytes):
            command = command.decode(errors="replace")
        entries.append(
            SlowlogEntry(
                id=int(item["id"]),
                started_at=datetime.fromtimestamp(int(item["start_time"]), UTC),
                duration_us=int(item["duration"]),
                command=str(command)[:200],
            )
        )
    return entries


async def diagnose(target: RedisTarget, access: RedisAccess, ping_samples: int) -> Diagnosis:
    """Read everything triage needs, recording failures as findings. A Sentinel-managed
    target: the Sentinels and every member first, then the master they name, if it answers
    them (a master they flag as down is not one to read as if it were fine)."""
    if access.sentinel is None:
        return await diagnose_at(target, access, ping_samples)
    taken_at = datetime.now(UTC)
    facts = await replication_facts(target, access.sentinel, access)
    group = group_findings(facts, access.sentinel.lag_threshold_s)
    master = usable_master(facts)
    if isinstance(master, Finding):
        return Diagnosis(
            redis_url=target.redis_url,
            taken_at=taken_at,
            reachable=False,
            findings=[master, *group],
            replication=facts,
        )
    seen = await diagnose_at(target, access, ping_samples, split(master))
    return seen.model_copy(update={"findings": [*seen.findings, *group], "replication": facts})


async def diagnose_at(
    target: RedisTarget,
    access: RedisAccess,
    ping_samples: int,
    where: tuple[str, int] | None = None,
) -> Diagnosis:
    """Read everything triage needs over one connection, recording failures as findings."""
    taken_at = datetime.now(UTC)
    findings: list[Finding] = []
    client = open_client(target, access, where)
    try:
        evicted_before = _int(await client.info("stats"), "evicted_keys")
        samples = await _sample_pings(client, ping_samples, findings)
        info = parse_info({**await client.info(), **await _errorstats(client)}, target.db)
        slowlog = await _slowlog(client, findings)
        dbsize = int(await client.dbsize())
    except rexc.RedisError as err:
        said = None
        if type(err) is rexc.ConnectionError and not _refused(err):
            said = await server_greeting(target, access)
        findings.insert(0, finding_for(rexc.ConnectionError(said) if said else err))
        return Diagnosis(
            redis_url=target.redis_url, taken_at=taken_at, reachable=False, findings=findings
        )
    finally:
        await client.aclose()
    return Diagnosis(
        redis_url=target.redis_url,
        taken_at=taken_at,
        reachable=True,
        findings=findings,
        ping_samples_ms=samples,
        ping_p50_ms=statistics.median(samples) if samples else None,
        ping_p95_ms=percentile(samples, 95) if samples else None,
        info=info,
        evictions_during_sample=max(0, info.evicted_keys - evicted_before),
        slowlog=slowlog,
        dbsize=dbsize,
    )


class RedisDiagnosisActivities:
    """Activities bound to the worker's Redis credentials (no global state)."""

    def __init__(self, targets: TargetBook, ping_samples: int = 5) -> None:
        self._targets = targets
        self._ping_samples = ping_samples

    @activity.defn(name="diagnose_redis")
    async def diagnose_redis(self, target: RedisTarget) -> Diagnosis:
        return await diagnose(target, self._targets.access(target), self._ping_samples)
