"""The connection options of a target's Redis, with its credentials and TLS, at its URL or
at a member a Sentinel named: one place, for every client the activities open."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from activities.targets import RedisAccess
from contracts.target import RedisTarget


def client_options(target: RedisTarget, access: RedisAccess) -> dict[str, Any]:
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


MEMBER_TIMEOUT = timedelta(seconds=2)


def member_access(access: RedisAccess) -> RedisAccess:
    """A group's member that takes more than a couple of seconds to answer INFO is itself a
    finding: reading each one does not wait the full command timeout."""
    return access.model_copy(
        update={
            "connect_timeout": min(access.connect_timeout, MEMBER_TIMEOUT),
            "command_timeout": min(access.command_timeout, MEMBER_TIMEOUT),
        }
    )
