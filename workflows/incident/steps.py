"""Which activity performs each runbook step, with that step kind's retry policy.

Activities are registered under the step's own name, so the mapping below is only about
arguments: pure data, readable at a glance. What only the running incident knows (the
restart stamp, the readiness deadline, the pod seen, the replicas before fallback) comes in
a StepContext.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.kubernetes import (
        FallbackResult,
        ForceDeleteResult,
        MemoryLimitResult,
        ReadinessResult,
        ReEnableResult,
        RestartResult,
        ScaleResult,
    )
    from contracts.step_result import StepResult
    from contracts.steps import Step, StepName
    from contracts.target import RedisTarget
    from workflows.incident.retries import kind_of


@dataclass(frozen=True)
class StepContext:
    stamp: str
    ready_deadline: datetime
    pod: str = ""
    uid: str = ""
    original_replicas: int | None = None
    server_run_id: str = ""  # the Redis run and FLUSHDB count a flush starts from
    flushes_before: int = -1


Arguments = Callable[[RedisTarget, Step, StepContext], list[Any]]

ACTIONS: dict[StepName, Arguments] = {
    StepName.PING: lambda t, s, c: [t],
    StepName.MEMORY_PURGE: lambda t, s, c: [t],
    StepName.FLUSH: lambda t, s, c: [t, c.server_run_id, c.flushes_before],
    StepName.SET_EVICTION_POLICY: lambda t, s, c: [t, s.params["policy"]],
    StepName.RAISE_MAXCLIENTS: lambda t, s, c: [t, int(s.params["maxclients"])],
    StepName.TUNE_PERSISTENCE: lambda t, s, c: [t, dict(s.params)],
    StepName.WARM: lambda t, s, c: [t],
    StepName.WATCH_HIT_RATE: lambda t, s, c: [
        t,
        float(s.params["goal"]),
        float(s.params["interval_s"]),
        float(s.params["deadline_s"]),
    ],
}
# Every parameter is passed, defaults included: the SDK decodes arguments by the activity's
# type hints only when their count matches, otherwise a datetime would arrive as a string.
KUBERNETES_ACTIONS: dict[StepName, Arguments] = {
    StepName.RESTART: lambda t, s, c: [t, c.stamp],
    StepName.WAIT_READY: lambda t, s, c: [t, c.ready_deadline, READY_POLL_S],
    StepName.FORCE_DELETE_POD: lambda t, s, c: [t, c.pod, c.uid],
    StepName.RAISE_MEMORY_LIMIT: lambda t, s, c: [t, str(s.params["limit"]), ""],
    StepName.ENABLE_FALLBACK: lambda t, s, c: [t, int(s.params["replicas"])],
    StepName.RE_ENABLE: lambda t, s, c: [t],
    StepName.SCALE: lambda t, s, c: [t, c.original_replicas, ""],
}
READY_POLL_S = 1.0
RESULT_TYPES: dict[StepName, type[StepResult]] = {
    StepName.RESTART: RestartResult,
    StepName.WAIT_READY: ReadinessResult,
    StepName.FORCE_DELETE_POD: ForceDeleteResult,
    StepName.RAISE_MEMORY_LIMIT: MemoryLimitResult,
    StepName.ENABLE_FALLBACK: FallbackResult,
    StepName.RE_ENABLE: ReEnableResult,
    StepName.SCALE: ScaleResult,
}

# What a worker with Redis access (and nothing else) can do; with Kubernetes, all of it.
REDIS_STEPS = frozenset({StepName.DIAGNOSE, *ACTIONS})
KUBERNETES_STEPS = frozenset(KUBERNETES_ACTIONS)


async def run_step(target: RedisTarget, step: Step, context: StepContext) -> StepResult:
    arguments = (ACTIONS | KUBERNETES_ACTIONS)[step.name]
    kind = kind_of(step.name)
    result: StepResult = await workflow.execute_activity(
        step.name.value,
        args=arguments(target, step, context),
        start_to_close_timeout=kind.timeout,
        heartbeat_timeout=kind.heartbeat,
        retry_policy=kind.retry,
        result_type=RESULT_TYPES.get(step.name, StepResult),
    )
    return result
