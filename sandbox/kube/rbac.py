"""RBAC Role rules, evaluated like kube-apiserver's RBAC authorizer (allow-only, no wildcards
beyond "*"), so the sandbox can refuse with 403 what the project's Role does not grant."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class PolicyRule(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    api_groups: tuple[str, ...] = Field(default=(), alias="apiGroups")
    resources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = Field(default=(), alias="resourceNames")

    def allows(self, verb: str, group: str, resource: str, name: str | None) -> bool:
        return (
            ("*" in self.api_groups or group in self.api_groups)
            and ("*" in self.resources or resource in self.resources)
            and ("*" in self.verbs or verb in self.verbs)
            and (not self.resource_names or name in self.resource_names)
        )


class Identity(BaseModel):
    """Who a bearer token is. `rules` None means cluster-admin (the sandbox's own user);
    otherwise they are a Role's rules, which grant nothing outside `namespace`."""

    model_config = ConfigDict(frozen=True)

    user: str
    rules: tuple[PolicyRule, ...] | None = None
    namespace: str | None = None

    def allows(
        self, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> bool:
        if self.rules is None:
            return True
        if self.namespace is not None and namespace != self.namespace:
            return False
        return any(rule.allows(verb, group, resource, name) for rule in self.rules)


def load_role_rules(path: Path) -> tuple[PolicyRule, ...]:
    """The rules of every Role/ClusterRole document in a manifest file."""
    rules: list[PolicyRule] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and doc.get("kind") in ("Role", "ClusterRole"):
            rules += [PolicyRule.model_validate(rule) for rule in doc.get("rules") or []]
    return tuple(rules)


def granted_pairs(rules: Iterable[PolicyRule]) -> set[tuple[str, str, str]]:
    """(verb, apiGroup, resource) triples a set of rules grants, for exact comparisons."""
    return {
        (verb, group, resource)
        for rule in rules
        for verb in rule.verbs
        for group in rule.api_groups
        for resource in rule.resources
    }
