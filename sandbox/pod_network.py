"""How a sandbox pod reaches a Service: the sandbox's stand-in for cluster DNS and kube-proxy.

Every sandbox process listens on 127.0.0.1, each Redis pod on a port of its own, so a name like
`redis:6379` (what an application's REDIS_URL holds) means nothing to the host. Inside a pod it
means "the Service `redis` in my namespace, on its port": this module turns such an address
into a ready endpoint's real address, from the Service and its Endpoints as the API server
holds them, so that a Service with no ready endpoint refuses the connection, as kube-proxy
does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sandbox.kube.api import KubeAPI

JSONDict = dict[str, Any]
GetObject = Callable[[str, str | None, str], Awaitable[JSONDict | None]]
CLUSTER_DOMAIN = "svc.cluster.local"


def service_name(host: str, namespace: str) -> str | None:
    """The Service a host name means from a pod in `namespace`: `redis`, `redis.<ns>`,
    `redis.<ns>.svc` or the full `redis.<ns>.svc.cluster.local`; None for anything else."""
    if host == "localhost" or host.replace(".", "").isdigit():
        return None
    parts = host.rstrip(".").split(".")
    suffix = [namespace, *CLUSTER_DOMAIN.split(".")]
    if parts[1:] == suffix[: len(parts) - 1]:
        return parts[0]
    return None


class Unreachable(OSError):
    """A connection that fails as it would in the cluster: `reason` is the system's words
    (redis-cli prints them), str() is what redis-py says."""

    def __init__(self, host: str, port: int, errno: int, reason: str) -> None:
        super().__init__(errno, f"Error {errno} connecting to {host}:{port}. {reason}.")
        self.reason = reason

    def __str__(self) -> str:
        return str(self.strerror)


def _match(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def admitted(policies: list[JSONDict], source: Mapping[str, str], dest: Mapping[str, str],
             port: int) -> bool:  # fmt: skip
    """Ingress to `dest` from `source` in one namespace, as the network plugin enforces it
    (matchLabels selectors; the sandbox's own policies use nothing else)."""
    isolating = [
        p for p in policies
        if "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])
        and _match((p.get("spec") or {}).get("podSelector"), dest)
    ]  # fmt: skip
    if not isolating:
        return True
    for policy in isolating:
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            peers = rule.get("from") or []
            ports = [int(p["port"]) for p in rule.get("ports") or [] if "port" in p]
            peer_ok = not peers or any(_match(peer.get("podSelector"), source) for peer in peers)
            if peer_ok and (not ports or port in ports):
                return True
    return False


async def resolve(
    get: GetObject,
    namespace: str,
    host: str,
    port: int,
    source: Mapping[str, str],
    policies: list[JSONDict],
) -> tuple[str, int]:
    """The address behind `host:port` as seen from a pod in `namespace` with the labels
    `source`. A host that is not a Service is returned as it is (127.0.0.1 reaches the pod
    itself, as localhost does); a NetworkPolicy that does not admit the pod drops the
    connection (a timeout, as a real network plugin gives)."""
    name = service_name(host, namespace)
    if name is None:
        return host, port
    service = await get("services", namespace, name)
    if service is None:
        raise Unreachable(host, port, -2, "Name or service not known")
    ports = (service.get("spec") or {}).get("ports") or []
    wanted = next((p for p in ports if int(p.get("port", 0)) == port), None)
    endpoints = await get("endpoints", namespace, name)
    for subset in ((endpoints or {}).get("subsets") or []) if wanted else []:
        addresses = subset.get("addresses") or []
        target = next(iter(subset.get("ports") or []), None)
        if addresses and target:
            pod = await get("pods", namespace, str(addresses[0]["targetRef"]["name"]))
            labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
            declared = (wanted or {}).get("targetPort") or port  # what the policy names
            if not admitted(policies, source, labels, int(declared)):
                raise Unreachable(host, port, 110, "Connection timed out")
            return str(addresses[0]["ip"]), int(target["port"])
    raise Unreachable(host, port, 111, "Connection refused")


async def reach(api: KubeAPI, pod: Mapping[str, Any], host: str, port: int) -> tuple[str, int]:
    """resolve() for a connection made by `pod`, under its namespace's policies now."""
    namespace = pod["metadata"]["namespace"]
    policies = await api.list_objects("networkpolicies", namespace)
    labels = pod["metadata"].get("labels") or {}
    return await resolve(api.get_object, namespace, host, port, labels, policies)
