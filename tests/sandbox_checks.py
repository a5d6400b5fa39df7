"""A redis_down incident on the sandbox cluster, as tests run it: the incident, what the API
Deployment looks like, and waiting for a condition (never a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client

from activities.models import Incident
from sandbox.cluster import SandboxCluster
from tests.harness import auto

NS = "treebeard-production"


def incident(cluster: SandboxCluster) -> Incident:
    """An auto-mode incident for the sandbox's Redis, its StatefulSet and the API."""
    return auto(cluster.redis_url)


def api_state(cluster: SandboxCluster) -> tuple[int | None, str | None]:
    """(replicas, CACHE_ENABLED of the api container) of the API Deployment."""
    with cluster.api_client() as api:
        deploy = client.AppsV1Api(api).read_namespaced_deployment("treebeard-api", NS)
    assert deploy.spec is not None and deploy.spec.template.spec is not None
    env = {e.name: e.value for e in deploy.spec.template.spec.containers[0].env or []}
    return deploy.spec.replicas, env.get("CACHE_ENABLED")


async def until(check: Callable[[], Any], what: str, within: float = 90.0) -> None:
    """Poll a blocking check on a thread until it holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"never happened within {within}s: {what}")
        await asyncio.sleep(0.1)
