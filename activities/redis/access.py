"""How the worker reaches a Redis: the URL and the secrets both come from the worker's own
configuration of that target (activities.targets), never from workflow input."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from activities.redis.sentinel import master_address_sync
from activities.targets import RedisAccess
from contracts.target import RedisTarget


def _options(target: RedisTarget, access: RedisAccess) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if target.redis_url.startswith("rediss://"):
        if access.tls_ca_file:
            extra["ssl_ca_certs"] = str(access.tls_ca_file)
        if access.tls_cert_file and access.tls_key_file:  # mTLS: the server checks us too
            extra["ssl_certfile"] = str(access.tls_cert_file)
            extra["ssl_keyfile"] = str(access.tls_key_file)
    return {
        "username": access.username,
        "password": access.password.get_secret_value() if access.password else None,
        "socket_connect_timeout": access.connect_timeout.total_seconds(),
        "socket_timeout": access.command_timeout.total_seconds(),
        **extra,
    }


def url_at(target: RedisTarget, where: tuple[str, int] | None) -> str:
    """The target's URL, at the master Sentinel named in place of its host (scheme and
    database kept)."""
    if where is None:
        return target.redis_url
    parts = urlsplit(target.redis_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{where[0]}:{where[1]}"))


def open_sync_client(target: RedisTarget, access: RedisAccess) -> redis.Redis:
    """For code on a thread (warmers, the readiness check between Kubernetes reads); a
    Sentinel-managed target's master is looked up first."""
    where = master_address_sync(access.sentinel, access) if access.sentinel else None
    return redis.Redis.from_url(url_at(target, where), **_options(target, access))


def open_client(
    target: RedisTarget, access: RedisAccess, where: tuple[str, int] | None = None
) -> aioredis.Redis:
    """One dedicated connection (no pool): triage must not leave idle sockets on a full server.
    `where`: the master a Sentinel-managed target's Sentinels named (master_address)."""
    return aioredis.Redis.from_url(
        url_at(target, where),
        **_options(target, access),
        single_connection_client=True,
        decode_responses=True,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )
