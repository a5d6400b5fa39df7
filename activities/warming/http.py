"""The application's own warm endpoint: told which Redis to warm and proven to be the runbook
by a header whose value only the worker holds."""

from __future__ import annotations

import httpx

from activities.warming.models import ArmedWarmer
from contracts.target import RedisTarget


def body(name: str, target: RedisTarget, critical_only: bool) -> dict[str, str | bool]:
    """What the endpoint needs to warm the right cache; no secret (the URL carries none)."""
    return {
        "target": name,
        "redis_url": target.redis_url,
        "namespace": target.namespace,
        "statefulset": target.statefulset,
        "critical_only": critical_only,
    }


async def warm_over_http(
    armed: ArmedWarmer, name: str, target: RedisTarget, critical_only: bool
) -> str:
    """'HTTP <status>', or 'failed: ...' for an answer that is not 2xx."""
    warmer = armed.warmer
    headers = {warmer.auth_header: armed.auth.get_secret_value()} if armed.auth else {}
    async with httpx.AsyncClient(timeout=warmer.timeout_s) as client:
        response = await client.post(
            warmer.url or "",
            params={"critical_only": str(critical_only).lower()},
            json=body(name, target, critical_only),
            headers=headers,
        )
    if response.status_code >= 300:
        return f"failed: HTTP {response.status_code} {response.text[:120]}".rstrip()
    return f"HTTP {response.status_code}"
