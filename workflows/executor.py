"""Which activity performs each runbook step, with that step kind's retry policy.

Activities are registered under the step's own name, so the mapping below is only about
arguments: pure data, readable at a glance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import RedisTarget, Step, StepName, StepResult
    from workflows.retries import kind_of

Arguments = Callable[[RedisTarget, Step], list[Any]]

ACTIONS: dict[StepName, Arguments] = {
    StepName.PING: lambda t, s: [t],
    StepName.MEMORY_PURGE: lambda t, s: [t],
    StepName.FLUSH: lambda t, s: [t],
    StepName.SET_EVICTION_POLICY: lambda t, s: [t, s.params["policy"]],
    StepName.RAISE_MAXCLIENTS: lambda t, s: [t, int(s.params["maxclients"])],
    StepName.TUNE_PERSISTENCE: lambda t, s: [t, dict(s.params)],
    StepName.WARM: lambda t, s: [t],
    StepName.WATCH_HIT_RATE: lambda t, s: [
        t,
        float(s.params["goal"]),
        float(s.params["interval_s"]),
        float(s.params["deadline_s"]),
    ],
}

# What a worker with Redis access (and nothing else) can do.
REDIS_STEPS = frozenset({StepName.DIAGNOSE, *ACTIONS})


async def run_step(target: RedisTarget, step: Step) -> StepResult:
    kind = kind_of(step.name)
    result: StepResult = await workflow.execute_activity(
        step.name.value,
        args=ACTIONS[step.name](target, step),
        start_to_close_timeout=kind.timeout,
        heartbeat_timeout=kind.heartbeat,
        retry_policy=kind.retry,
        result_type=StepResult,
    )
    return result
