"""A flap: Redis goes down again after the API got its cache back. The workflow notices (at
the next recovery step's condition, or at the verification), serves from the database again
and recovers again, up to `outage.max_flaps` times; approvals already given stand."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.incident.memory import IncidentMemory
    from workflows.runbook.plan import fallback_again, mark_unavailable


def flapped(m: IncidentMemory) -> bool:
    """Redis is down again with the cache back on: another fallback round takes the place
    of what is left of the plan. Past `outage.max_flaps` the round has no recovery: the
    API is put back on the database and left there for a person. False when it stands
    down (aborted, or every alert resolved)."""
    if m.abort is not None or m.stand_down:
        return False
    limit = m.config.policy.outage.max_flaps
    recover = m.flaps < limit
    m.flaps += 1
    m.ready = m.answered = None  # those facts were about the previous outage
    again = fallback_again(m.config.policy, recover=recover)
    mark_unavailable(again, frozenset(m.config.available_steps))
    beside = [s for s in m.plan[m.next_step + 1 :] if s.offered]  # their own task runs them
    m.plan[m.next_step + 1 :] = again + beside
    if recover:
        what = "serving from the database again, then recovering again"
        m.note("flap", f"Redis is down again after recovery (flap {m.flaps} of at most "
               f"{limit}): {what}")  # fmt: skip
        return True
    why = (
        f"Redis went down again after recovery {m.flaps} times (outage.max_flaps is "
        f"{limit}): the API goes back on the database and stays there for a person "
        f"(to restore: CACHE_ENABLED=true, {m.original_replicas or '?'} replicas)"
    )
    m.note("flap", why)
    m.problems.append(why)
    return True
