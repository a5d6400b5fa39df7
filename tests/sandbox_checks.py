"""What tests read off the sandbox cluster while an incident runs, and waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kubernetes import client

from sandbox.cluster import SandboxCluster

NS = "treebeard-production"


def api_state(cluster: SandboxCluster) -> tuple[int | None, str | None]:
    """The API Deployment's replicas and CACHE_ENABLED, as the fallback steps leave them."""
    with cluster.api_client() as api:
        deploy = client.AppsV1Api(api).read_namespaced_deployment("treebeard-api", NS)
    assert deploy.spec is not None and deploy.spec.template.spec is not None
    env = {e.name: e.value for e in deploy.spec.template.spec.containers[0].env or []}
    return deploy.spec.replicas, env.get("CACHE_ENABLED")


async def until(check: Callable[[], bool], what: str, within: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"never saw: {what}")
        await asyncio.sleep(0.1)
