"""Alert labels -> the Redis target they are about: the config's `targets`, first match wins.

The same rule as TargetRoute.matches (every matcher a fully anchored regex on one label, all
must match, a missing label is the empty string), made cheap for storms: patterns compiled
once, each route's RedisTarget built once, and the answer remembered per combination of the
label values the routes actually look at (a storm repeats the same few combinations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.target import RedisTarget
from worker.settings.runbook import TargetRoute

MEMO_LIMIT = 10_000


@dataclass(frozen=True)
class Route:
    name: str
    target: RedisTarget
    matchers: tuple[tuple[str, re.Pattern[str]], ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(p.fullmatch(labels.get(k, "")) for k, p in self.matchers)


class Router:
    def __init__(self, routes: list[TargetRoute]) -> None:
        self._routes = [
            Route(r.name, r.to_target(), tuple((k, re.compile(p)) for k, p in r.match.items()))
            for r in routes
        ]
        self._names = sorted({k for r in routes for k in r.match})
        self._memo: dict[tuple[str, ...], Route | None] = {}

    def route(self, labels: Mapping[str, str]) -> Route | None:
        key = tuple(labels.get(name, "") for name in self._names)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = next((r for r in self._routes if r.matches(labels)), None)
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = found
        return found
