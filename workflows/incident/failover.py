"""Waiting for Sentinel's failover on durable timers, bounded by what the Sentinels themselves
allow (down-after plus twice failover-timeout). Nothing is restarted while it runs: the wait
only looks, every second, until a master the Sentinels name answers.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.steps import Step, StepResult
    from workflows.incident.memory import IncidentMemory
    from workflows.incident.probes import Probes

LOOK_EVERY = timedelta(seconds=1)


async def wait_failover(m: IncidentMemory, probes: Probes, step: Step) -> StepResult:
    """A result with after.promoted 1 once a master answers: another member (Sentinel
    promoted it) or the old one back before any failover. 0 at the bound, or on an abort."""
    old = str(step.params.get("old_master", ""))
    bound = timedelta(seconds=float(step.params.get("timeout_s", 60)))
    began = workflow.now()
    back = await probes.redis_back(bound, "waiting for Sentinel's failover", every=LOOK_EVERY)
    waited = (workflow.now() - began).total_seconds()
    seen = m.latest.replication if m.latest is not None else None
    master = seen.master if seen is not None else None
    if back and master:
        how = "the old master answers again" if master == old else "Sentinel promoted it"
        return StepResult(
            changed=False,
            summary=f"master {master} answers after {waited:.0f} s ({how})",
            before={"master": old},
            after={"master": master, "promoted": 1, "waited_seconds": waited},
        )
    return StepResult(
        changed=False,
        summary=f"no master answers after {waited:.0f} s (bound {bound.total_seconds():g} s): "
        "the failover did not happen",
        before={"master": old},
        after={"promoted": 0, "waited_seconds": waited},
    )
