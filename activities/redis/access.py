"""How the worker reaches a Redis: the URL and the secrets both come from the worker's own
configuration of that target (activities.targets), never from workflow input."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from activities.redis.options import client_options as _options
from activities.redis.options import url_at
from activities.redis.sentinel import master_address_sync
from activities.targets import RedisAccess
from contracts.target import RedisTarget


def open_sync_client(
    target: RedisTarget, access: RedisAccess, where: tuple[str, int] | None = None
) -> redis.Redis:
    """For code on a thread (warmers, the readiness check between Kubernetes reads); a
    Sentinel-managed target's master is looked up first, unless `where` names the member."""
    if where is None and access.sentinel is not None:
        where = master_address_sync(access.sentinel, access)
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
