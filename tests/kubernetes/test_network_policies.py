"""Which NetworkPolicies shut the API out of Redis: the Kubernetes rules, on the shapes
policies take in practice. A policy is named only when it certainly blocks."""

from __future__ import annotations

from typing import Any

from activities.kubernetes.network import Side, blocking, selects

NS = "treebeard-production"
API = Side(namespace=NS, labels={"app": "treebeard-api", "tier": "web"})
REDIS = Side(namespace=NS, labels={"app": "redis"}, ports={"redis": 6379})


def policy(name: str, select: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS},
            "spec": {"podSelector": {"matchLabels": select}, **spec}}  # fmt: skip


def from_api(**rule: Any) -> dict[str, Any]:
    return {"from": [{"podSelector": {"matchLabels": {"app": "treebeard-api"}}}], **rule}


def test_no_policy_or_one_that_admits_the_api_blocks_nothing() -> None:
    assert blocking([], API, REDIS, 6379) == []
    admits = policy("redis-from-api", {"app": "redis"}, policyTypes=["Ingress"],
                    ingress=[from_api(ports=[{"protocol": "TCP", "port": 6379}])])  # fmt: skip
    named_port = policy("by-name", {"app": "redis"}, ingress=[from_api(ports=[{"port": "redis"}])])
    assert blocking([admits, named_port], API, REDIS, 6379) == []


def test_a_deny_all_that_selects_redis_is_named() -> None:
    lockdown = policy("redis-lockdown", {"app": "redis"}, policyTypes=["Ingress"], ingress=[])
    elsewhere = policy("db-lockdown", {"app": "postgres"}, policyTypes=["Ingress"])
    assert blocking([lockdown, elsewhere], API, REDIS, 6379) == ["redis-lockdown"]


def test_rules_add_up_across_policies() -> None:
    """Ingress allowed by any selecting policy is allowed: the lockdown is overridden."""
    lockdown = policy("redis-lockdown", {"app": "redis"}, policyTypes=["Ingress"])
    admits = policy("redis-from-api", {"app": "redis"}, ingress=[from_api()])
    assert blocking([lockdown, admits], API, REDIS, 6379) == []


def test_the_wrong_port_or_the_wrong_peer_blocks() -> None:
    wrong_port = policy("redis-6380", {"app": "redis"}, ingress=[from_api(ports=[{"port": 6380}])])
    wrong_peer = policy("redis-from-jobs", {"app": "redis"}, ingress=[
        {"from": [{"podSelector": {"matchLabels": {"app": "jobs"}}}]}])  # fmt: skip
    assert blocking([wrong_port], API, REDIS, 6379) == ["redis-6380"]
    assert blocking([wrong_peer], API, REDIS, 6379) == ["redis-from-jobs"]
    ranged = policy(
        "range", {"app": "redis"}, ingress=[from_api(ports=[{"port": 6370, "endPort": 6390}])]
    )
    assert blocking([ranged], API, REDIS, 6379) == []


def test_egress_from_the_api_counts_too() -> None:
    def to(app: str) -> list[dict[str, Any]]:
        return [{"to": [{"podSelector": {"matchLabels": {"app": app}}}]}]

    out = policy("api-egress", {"app": "treebeard-api"}, policyTypes=["Egress"], egress=to("pg"))
    assert blocking([out], API, REDIS, 6379) == ["api-egress"]
    to_redis = policy(
        "api-out", {"app": "treebeard-api"}, policyTypes=["Egress"], egress=to("redis")
    )
    assert blocking([to_redis], API, REDIS, 6379) == []


def test_what_cannot_be_decided_is_not_blamed() -> None:
    """An ipBlock, or a namespace selected by labels this code cannot read, may admit."""
    cidr = policy(
        "cidr", {"app": "redis"}, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
    )
    team = policy("team", {"app": "redis"}, ingress=[{"from": [{"namespaceSelector": {
        "matchLabels": {"team": "web"}}}]}])  # fmt: skip
    assert blocking([cidr], API, REDIS, 6379) == []
    assert blocking([team], API, REDIS, 6379) == []
    other_ns = policy("other-ns", {"app": "redis"}, ingress=[{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}])  # fmt: skip
    assert blocking([other_ns], API, REDIS, 6379) == ["other-ns"]


def test_selectors_follow_kubernetes() -> None:
    labels = {"app": "redis", "tier": "cache"}
    assert selects({}, labels) and selects(None, labels)
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["cache"]}]}, labels
    )
    assert not selects(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["cache"]}]}, labels
    )
    assert selects({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)
