"""How the worker reaches a Redis: the URL comes from the incident, the secrets from the worker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, SecretStr
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from activities.models import RedisTarget


class RedisAccess(BaseModel):
    """Credentials and timeouts the worker holds; never part of workflow input or history."""

    model_config = ConfigDict(frozen=True)

    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    connect_timeout: timedelta = timedelta(seconds=2)
    command_timeout: timedelta = timedelta(seconds=5)


def open_client(target: RedisTarget, access: RedisAccess) -> aioredis.Redis:
    """One dedicated connection (no pool): triage must not leave idle sockets on a full server."""
    extra: dict[str, Any] = {}
    if target.redis_url.startswith("rediss://") and access.tls_ca_file:
        extra["ssl_ca_certs"] = str(access.tls_ca_file)
    return aioredis.Redis.from_url(
        target.redis_url,
        username=access.username,
        password=access.password.get_secret_value() if access.password else None,
        socket_connect_timeout=access.connect_timeout.total_seconds(),
        socket_timeout=access.command_timeout.total_seconds(),
        single_connection_client=True,
        decode_responses=True,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        **extra,
    )
