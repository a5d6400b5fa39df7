"""Which Redis errors retrying can fix, and which need a person.

A renamed command, a wrong password or a refused setting will fail the same way on every
retry: those become non-retryable ApplicationErrors with a type name the workflow and the
report show. A dropped connection or a timeout may heal, so those stay retryable.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import redis.exceptions as rexc
from temporalio.exceptions import ApplicationError

from activities.redis.access import open_client
from activities.redis.sentinel import MasterUnavailable, command, master_address
from activities.targets import RedisAccess
from contracts.target import RedisTarget

COMMAND_UNAVAILABLE = "CommandUnavailable"
AUTH_FAILED = "RedisAuthFailed"
REFUSED_BY_SERVER = "RefusedByServer"
REFUSED_BY_POLICY = "RefusedByPolicy"
NON_RETRYABLE = [COMMAND_UNAVAILABLE, AUTH_FAILED, REFUSED_BY_SERVER, REFUSED_BY_POLICY]

_UNKNOWN = re.compile(r"unknown (?:sub)?command '?([^' ,]+)", re.IGNORECASE)


def unfixable(err: rexc.RedisError) -> ApplicationError | None:
    """The non-retryable error for `err`, or None when a retry may succeed."""
    text = str(err)
    if isinstance(err, rexc.AuthenticationError | rexc.NoPermissionError) or "NOAUTH" in text:
        return ApplicationError(
            f"Redis refused the worker's credentials: {text}. Fix RUNBOOK_REDIS_PASSWORD "
            "(or the ACL user's permissions) on the worker",
            type=AUTH_FAILED,
            non_retryable=True,
        )
    match = _UNKNOWN.search(text)
    if match:
        return ApplicationError(
            f"{match[1].upper()} is renamed or disabled on this server (rename-command); "
            "the step cannot be automated here: do it by hand with the renamed command",
            type=COMMAND_UNAVAILABLE,
            non_retryable=True,
        )
    if isinstance(err, rexc.ResponseError) and not isinstance(err, rexc.BusyLoadingError):
        return ApplicationError(
            f"Redis refused the change: {text}", type=REFUSED_BY_SERVER, non_retryable=True
        )
    return None


async def _confirm_master(client: aioredis.Redis, where: tuple[str, int]) -> None:
    role = await command(client, "ROLE")
    said = str(role[0]) if role else "?"
    if said != "master":
        raise MasterUnavailable(
            f"{where[0]}:{where[1]}, named master by Sentinel, says it is a {said}: a "
            "failover is under way; the step waits for it"
        )


@asynccontextmanager
async def redis_session(target: RedisTarget, access: RedisAccess) -> AsyncIterator[aioredis.Redis]:
    """One connection for one activity attempt, with errors sorted into fixable or not. A
    Sentinel-managed target's connection goes to the master the Sentinels name, and is used
    only once that server itself says it is the master (a failover may be under way)."""
    where = await master_address(access.sentinel, access) if access.sentinel else None
    client = open_client(target, access, where)
    try:
        if where is not None:
            await _confirm_master(client, where)
        yield client
    except rexc.RedisError as err:
        raise (unfixable(err) or err) from err
    finally:
        await client.aclose()
