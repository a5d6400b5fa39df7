"""Injected API failures: the next N requests that match are refused with a status (503,
409, 429, 500, 504), held before they are handled (a slow API server: the write lands after
the client gave up), or handled at once with their reply held (the write is done, but the
client times out and cannot know). A real kube-apiserver does all three under load, during
an upgrade or behind a flaky load balancer; these let a test show that the activities retry
and still do each change once.

Rules are checked by KubeAPI for every authorised request, in the order they were added;
each is spent after `times` matches. kmock's own reactions (`kmock['patch'][:3] << 503`) do
not fit: a slice counts over the whole request history rather than "the next N from now",
its reactions bypass KubeAPI's audit, and its reaction list is not safe to change from the
test's thread while the server's loop serves.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class RequestFacts(BaseModel):
    """What a rule can match on: the request as the audit log describes it."""

    verb: str
    resource: str
    namespace: str | None
    name: str | None
    user: str


class ApiFailure(BaseModel):
    """One rule: which requests (`verb` and `resource` as in the audit log, e.g. "patch" and
    "statefulsets" or "statefulsets/status"; optionally one object, namespace or user), how
    many of them (`times`), and what happens to each."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    verb: str
    resource: str
    name: str | None = None
    namespace: str | None = None
    user: str | None = None
    times: int = Field(default=1, ge=1)
    status: int | None = Field(default=None, description="answered instead of handling it")
    delay: float = Field(default=0.0, ge=0, description="seconds held before it is handled")
    reply_delay: float = Field(
        default=0.0, ge=0, description="seconds its reply is held after it was handled"
    )
    _used: int = PrivateAttr(default=0)

    @model_validator(mode="after")
    def _one_effect(self) -> ApiFailure:
        if self.status is None and not self.delay and not self.reply_delay:
            raise ValueError("an ApiFailure needs a status, a delay or a reply_delay")
        if self.status is not None and self.reply_delay:
            raise ValueError("a refused request has no reply to hold: status or reply_delay")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an error")
        return self

    @property
    def used(self) -> int:
        """How many requests this rule has failed so far."""
        return self._used

    @property
    def spent(self) -> bool:
        return self._used >= self.times

    @property
    def reason(self) -> str:
        return REASONS.get(self.status or 0, "InjectedFailure")

    def matches(self, facts: RequestFacts) -> bool:
        return (
            facts.verb == self.verb
            and facts.resource == self.resource
            and self.name in (None, facts.name)
            and self.namespace in (None, facts.namespace)
            and self.user in (None, facts.user)
        )

    def describe(self) -> str:
        """The audit log's note: what the request went through."""
        parts = []
        if self.delay:
            parts.append(f"held {self.delay:g}s")
        if self.status is not None:
            parts.append(f"refused {self.status}")
        if self.reply_delay:
            parts.append(f"reply held {self.reply_delay:g}s")
        return ", ".join(parts)

    def message(self, facts: RequestFacts) -> str:
        """The Status message kube-apiserver would send for this code."""
        target = f'{facts.resource} "{facts.name}"' if facts.name else facts.resource
        if self.status == 409:
            return (
                f"Operation cannot be fulfilled on {target}: the object has been modified; "
                "please apply your changes to the latest version and try again"
            )
        if self.status == 429:
            return "Too many requests, please try again later."
        if self.status == 504:
            return f"Timeout: request did not complete within the allowed duration ({target})"
        return f"the server is currently unable to handle the request ({facts.verb} {target})"


class FailurePlan:
    """The injected rules of one API server. Added to from any thread (tests); claimed from
    the server's loop."""

    def __init__(self) -> None:
        self._rules: list[ApiFailure] = []
        self._lock = threading.Lock()

    def add(self, failure: ApiFailure | None = None, **fields: Any) -> ApiFailure:
        """Add a rule (an ApiFailure, or its fields) after the ones already there."""
        rule = failure or ApiFailure(**fields)
        with self._lock:
            self._rules.append(rule)
        return rule

    def claim(self, facts: RequestFacts) -> ApiFailure | None:
        """The first unspent rule matching this request, counted as used by it."""
        with self._lock:
            for rule in self._rules:
                if not rule.spent and rule.matches(facts):
                    rule._used += 1
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> list[ApiFailure]:
        """Rules with requests left to fail."""
        with self._lock:
            return [rule for rule in self._rules if not rule.spent]
