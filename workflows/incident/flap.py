"""A flap: Redis goes down again after the API got its cache back. The workflow notices (at
the next recovery step's condition, or at the verification), serves from the database again
and recovers again, up to `outage.max_flaps` times; approvals already given stand."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.steps import StepName
    from workflows.incident.state import IncidentState
    from workflows.runbook.plan import fallback_again, mark_unavailable


class FlapGuard(IncidentState):
    def _cache_given_back(self) -> bool:
        """Whether, since the latest fallback was entered, the API got its cache back."""
        so_far = self._plan[: self._index + 1]
        entered = [
            i
            for i, s in enumerate(so_far)
            if s.name is StepName.ENABLE_FALLBACK and s.status == "succeeded"
        ]
        return bool(entered) and any(
            s.name is StepName.RE_ENABLE and s.status == "succeeded" for s in so_far[entered[-1] :]
        )

    def _flapped(self) -> bool:
        """Redis is down again with the cache back on: another fallback round takes the place
        of what is left of the plan. Past `outage.max_flaps` the round has no recovery: the
        API is put back on the database and left there for a person. False when it stands
        down (aborted, or every alert resolved)."""
        if self._abort is not None or self._stand_down:
            return False
        limit = self._config.policy.outage.max_flaps
        recover = self._flaps < limit
        self._flaps += 1
        self._ready = self._answered = None  # those facts were about the previous outage
        again = fallback_again(self._config.policy, recover=recover)
        mark_unavailable(again, frozenset(self._config.available_steps))
        self._plan[self._index + 1 :] = again
        if recover:
            what = "serving from the database again, then recovering again"
            self._note("flap", f"Redis is down again after recovery (flap {self._flaps} of at "
                       f"most {limit}): {what}")  # fmt: skip
            return True
        why = (
            f"Redis went down again after recovery {self._flaps} times (outage.max_flaps is "
            f"{limit}): the API goes back on the database and stays there for a person "
            f"(to restore: CACHE_ENABLED=true, {self._original_replicas or '?'} replicas)"
        )
        self._note("flap", why)
        self._problems.append(why)
        return True
