"""A redis_down incident on the sandbox cluster, as tests run it: the incident, what the API
Deployment looks like, and waiting for a condition (never a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from kubernetes import client

from contracts.incident import Incident
from sandbox.cluster import SandboxCluster
from tests.harness import auto, settings_for
from worker.settings.runbook import Settings

NS = "treebeard-production"
# The worker's least-privilege Role: sandbox clusters in tests hold the runbook to it.
ROLE = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "rbac" / "role.yaml"
CATALOG = {"name": "catalog", "kind": "callable", "target": "sandbox.cache_traffic:warm_catalog"}
# Crash-looping Redis, the force delete's approval let expire, fallback after 3 s: the path
# through enable_fallback, waiting for Redis, warm, re_enable, scale and watch_hit_rate.
TO_FALLBACK: dict[str, Any] = {
    "outage": {"ready_timeout": "2s", "fallback_after": "3s", "poll": "0.5s"},
    "approvals": {"required_for": ["force_delete_pod"], "timeout": "1s"},
}


def incident(cluster: SandboxCluster) -> Incident:
    """An auto-mode incident for the sandbox's Redis, its StatefulSet and the API."""
    return auto(cluster.redis_url)


def fallback_settings(cluster: SandboxCluster, **outage: Any) -> Settings:
    """A worker on this sandbox taking the fallback path (TO_FALLBACK, the catalog warmer, a
    short hit-rate watch); `outage` adds to TO_FALLBACK's outage section."""
    return settings_for(
        cluster.redis_url,
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        outage={**TO_FALLBACK["outage"], **outage},
        approvals=TO_FALLBACK["approvals"],
        warmers=[CATALOG],
        recovery={"watch_interval": "0.5s", "watch_deadline": "6s"},
    )


def api_state(cluster: SandboxCluster) -> tuple[int | None, str | None]:
    """(replicas, CACHE_ENABLED of the api container) of the API Deployment."""
    with cluster.api_client() as api:
        deploy = client.AppsV1Api(api).read_namespaced_deployment("treebeard-api", NS)
    assert deploy.spec is not None and deploy.spec.template.spec is not None
    env = {e.name: e.value for e in deploy.spec.template.spec.containers[0].env or []}
    return deploy.spec.replicas, env.get("CACHE_ENABLED")


def answers(cluster: SandboxCluster) -> bool:
    """Whether the sandbox's Redis answers PING now."""
    try:
        with cluster.redis() as conn:
            return bool(conn.ping())
    except redis.RedisError:
        return False


async def until(check: Callable[[], Any], what: str, within: float = 90.0) -> None:
    """Poll a blocking check on a thread until it holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"never happened within {within}s: {what}")
        await asyncio.sleep(0.1)
