"""Label and field selectors, evaluated the way kube-apiserver does.

Plain kmock returns every object for a list whatever the selector says, so code that forgets
or misspells a selector would pass its tests; the sandbox filters for real, and refuses the
field selectors a real server refuses (400), so a selector that only works on the emulator
cannot slip through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

# Field selectors each resource supports (kube-apiserver answers 400 for any other field).
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
FIELDS_BY_RESOURCE: dict[str, frozenset[str]] = {
    "pods": COMMON_FIELDS
    | {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "status.phase", "status.podIP"},
    "events": COMMON_FIELDS
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "persistentvolumeclaims": COMMON_FIELDS | {"status.phase"},
    "jobs": COMMON_FIELDS | {"status.successful"},
    "namespaces": COMMON_FIELDS | {"status.phase"},
}


class SelectorError(ValueError):
    """A selector kube-apiserver would refuse with 400 Bad Request."""


class Requirement(BaseModel):
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=":
                return present and value == self.values[0]
            case "!=":
                return not present or value != self.values[0]
            case "in":
                return present and value in self.values
            case "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case _:
                return not present


_LABEL_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_LABEL_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_LABEL_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_LABEL_KEY})\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside the parentheses of `in (a,b)`."""
    terms: list[str] = []
    depth, current = 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def parse_label_selector(selector: str) -> list[Requirement]:
    requirements = []
    for term in _split_terms(selector):
        if found := _SET_RE.match(term):
            values = tuple(v.strip() for v in found.group(3).split(",") if v.strip())
            requirements.append(
                Requirement(key=found.group(1), operator=found.group(2), values=values)
            )
        elif found := _EQ_RE.match(term):
            operator = "!=" if found.group(2) == "!=" else "="
            requirements.append(
                Requirement(key=found.group(1), operator=operator, values=(found.group(3),))
            )
        elif found := _EXISTS_RE.match(term):
            operator = "!" if found.group(1) else "exists"
            requirements.append(Requirement(key=found.group(2), operator=operator))
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    return requirements


def parse_field_selector(selector: str, resource: str) -> list[tuple[str, bool, str]]:
    """Parse `a.b=x,c!=y` into (field, equal, value); unsupported fields are a 400 like
    kube-apiserver's 'field label not supported'."""
    allowed = FIELDS_BY_RESOURCE.get(resource, COMMON_FIELDS)
    terms = []
    for term in _split_terms(selector):
        found = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not found:
            raise SelectorError(f"invalid field selector: {term.strip()!r}")
        field, operator, value = found.groups()
        if field not in allowed:
            raise SelectorError(f'field label not supported: "{field}"')
        terms.append((field, operator != "!=", value))
    return terms


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    if path == "source":  # events: source is matched on its component
        path = "source.component"
    if path == "status.successful":  # jobs: the count of succeeded pods, 0 when none
        return str(int((obj.get("status") or {}).get("succeeded") or 0))
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def selector_predicate(
    resource: str, label_selector: str | None, field_selector: str | None
) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for one list or watch request; raises SelectorError for a bad selector."""
    labels = parse_label_selector(label_selector or "")
    fields = parse_field_selector(field_selector or "", resource)

    def matches(obj: Mapping[str, Any]) -> bool:
        obj_labels = (obj.get("metadata") or {}).get("labels") or {}
        if not all(req.matches(obj_labels) for req in labels):
            return False
        return all((_field_value(obj, f) == v) == eq for f, eq, v in fields)

    return matches
