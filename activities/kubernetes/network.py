"""Can the API's pods reach Redis, as the namespace's NetworkPolicies say?

This is what tells "Redis is down" from "the application is cut off from a healthy Redis"
without a probe from inside the cluster: a restart cures the first and does nothing for the
second, so a policy that shuts the API out must stop the runbook from restarting anything.

Kubernetes semantics, for pods of one namespace: a pod is isolated for ingress (egress) when
some policy selects it with that policy type; an isolated pod admits only what some rule of
a selecting policy allows; a rule with no `from`/`to` admits every peer, one with no `ports`
every port. Where this code cannot decide (an `ipBlock` peer, a namespace selector on labels
it cannot see), it assumes the traffic is allowed: it names a policy as the cause only when
the policy certainly blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

JSONDict = dict[str, Any]
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


class Side(BaseModel):
    """One end of the connection: its pods' labels and, for Redis, its named ports."""

    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = {}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector: matchLabels and matchExpressions, all of them. {} selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if (op == "Exists") != present and op in ("Exists", "DoesNotExist"):
            return False
    return True


def policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return list(declared)
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def peer_admits(peer: Mapping[str, Any], policy_ns: str, other: Side) -> bool:
    if "ipBlock" in peer:
        return True  # pod IPs are not known here: assume it may admit
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        in_namespace = other.namespace == policy_ns
    else:
        known = set((namespaces.get("matchLabels") or {}).keys()) <= {NAMESPACE_LABEL}
        plain = not namespaces.get("matchExpressions")
        if not (known and plain):
            return True  # labels of the namespace this code cannot see
        in_namespace = selects(namespaces, {NAMESPACE_LABEL: other.namespace})
    return in_namespace and selects(peer.get("podSelector"), other.labels)


def port_admits(rule_ports: list[JSONDict] | None, port: int, redis: Side) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if (entry.get("protocol") or "TCP") != "TCP":
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        number = redis.ports.get(wanted) if isinstance(wanted, str) else int(wanted)
        if number is None:
            continue
        if number <= port <= int(entry.get("endPort") or number):
            return True
    return False


def rule_admits(rule: Mapping[str, Any], peers_key: str, policy_ns: str, other: Side,
                port: int, redis: Side) -> bool:  # fmt: skip
    peers = rule.get(peers_key)
    peer_ok = not peers or any(peer_admits(p, policy_ns, other) for p in peers)
    return peer_ok and port_admits(rule.get("ports"), port, redis)


def blocking(policies: Iterable[Mapping[str, Any]], api: Side, redis: Side, port: int) -> list[str]:
    """The policies that shut the API out of Redis on `port`: those isolating Redis for
    ingress when none admits the API, and those isolating the API for egress when none lets
    it out to Redis. Empty when the traffic is allowed (or cannot be decided)."""
    found: list[str] = []
    for direction, pods, peers_key, other in (
        ("Ingress", redis, "from", api),
        ("Egress", api, "to", redis),
    ):
        isolating = [
            p for p in policies
            if (p.get("metadata") or {}).get("namespace", pods.namespace) == pods.namespace
            and direction in policy_types(p)
            and selects((p.get("spec") or {}).get("podSelector"), pods.labels)
        ]  # fmt: skip
        rules_key = direction.lower()
        admitted = any(
            rule_admits(rule, peers_key, pods.namespace, other, port, redis)
            for p in isolating
            for rule in (p.get("spec") or {}).get(rules_key) or []
        )
        if isolating and not admitted:
            found += [str(p["metadata"]["name"]) for p in isolating]
    return found
