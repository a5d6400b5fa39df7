"""Which activity performs each runbook step, with its arguments and that step kind's retries.

Activities are called by reference (the method, so a reader and a type checker can follow it)
and step parameters are read through typed models, never cast by hand. What only the running
incident knows (the restart stamp, the readiness deadline, the pod seen, the replicas before
fallback) comes in a StepContext.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.kubernetes.steps import KubernetesActivities as Kube
    from activities.redis.failover import SentinelActivities as Group
    from activities.redis.hit_rate import HitRateActivities
    from activities.redis.remediation import RedisRemediationActivities as Fix
    from activities.warming.activity import WarmingActivities
    from contracts.steps import Step, StepName, StepResult
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


class Params(BaseModel):
    """A step's parameters as the plan wrote them (Step.params), typed for its activity."""

    model_config = ConfigDict(extra="ignore")


class EvictionParams(Params):
    policy: str


class MaxclientsParams(Params):
    maxclients: int


class WatchParams(Params):
    goal: float
    interval_s: float
    deadline_s: float


class MemoryLimitParams(Params):
    limit: str


class FallbackParams(Params):
    replicas: int


class MemberParams(Params):
    address: str


def _options(step: Step) -> dict[str, Any]:
    kind = kind_of(step.name)
    return {
        "start_to_close_timeout": kind.timeout,
        "heartbeat_timeout": kind.heartbeat,
        "retry_policy": kind.retry,
    }


def _watch(t: RedisTarget, s: Step) -> Awaitable[StepResult]:
    p = WatchParams.model_validate(s.params)
    return workflow.execute_activity_method(
        HitRateActivities.watch_hit_rate,
        args=[t, p.goal, p.interval_s, p.deadline_s],
        **_options(s),
    )


Perform = Callable[[RedisTarget, Step, StepContext], Awaitable[StepResult]]
call = workflow.execute_activity_method

REDIS_ACTIONS: dict[StepName, Perform] = {
    StepName.PING: lambda t, s, c: call(Fix.ping, t, **_options(s)),
    StepName.MEMORY_PURGE: lambda t, s, c: call(Fix.memory_purge, t, **_options(s)),
    StepName.FLUSH: lambda t, s, c: call(
        Fix.flush, args=[t, c.server_run_id, c.flushes_before], **_options(s)
    ),
    StepName.SET_EVICTION_POLICY: lambda t, s, c: call(
        Fix.set_eviction_policy,
        args=[t, EvictionParams.model_validate(s.params).policy],
        **_options(s),
    ),
    StepName.RAISE_MAXCLIENTS: lambda t, s, c: call(
        Fix.raise_maxclients,
        args=[t, MaxclientsParams.model_validate(s.params).maxclients],
        **_options(s),
    ),
    StepName.TUNE_PERSISTENCE: lambda t, s, c: call(
        Fix.tune_persistence, args=[t, dict(s.params)], **_options(s)
    ),
    StepName.WARM: lambda t, s, c: call(WarmingActivities.warm, t, **_options(s)),
    StepName.WATCH_HIT_RATE: lambda t, s, c: _watch(t, s),
    StepName.VERIFY_WRITES: lambda t, s, c: call(
        Group.verify_writes, args=[t, c.stamp], **_options(s)
    ),
    StepName.SENTINEL_FAILOVER: lambda t, s, c: call(Group.sentinel_failover, t, **_options(s)),
}
# Every parameter is passed, defaults included: the SDK decodes arguments by the activity's
# type hints only when their count matches, otherwise a datetime would arrive as a string.
KUBERNETES_ACTIONS: dict[StepName, Perform] = {
    StepName.RESTART: lambda t, s, c: call(Kube.restart, args=[t, c.stamp], **_options(s)),
    StepName.WAIT_READY: lambda t, s, c: call(
        Kube.wait_ready, args=[t, c.ready_deadline, READY_POLL_S], **_options(s)
    ),
    StepName.FORCE_DELETE_POD: lambda t, s, c: call(
        Kube.force_delete_pod, args=[t, c.pod, c.uid], **_options(s)
    ),
    StepName.RAISE_MEMORY_LIMIT: lambda t, s, c: call(
        Kube.raise_memory_limit,
        args=[t, MemoryLimitParams.model_validate(s.params).limit, ""],
        **_options(s),
    ),
    StepName.ENABLE_FALLBACK: lambda t, s, c: call(
        Kube.enable_fallback,
        args=[t, FallbackParams.model_validate(s.params).replicas],
        **_options(s),
    ),
    StepName.RE_ENABLE: lambda t, s, c: call(Kube.re_enable, t, **_options(s)),
    StepName.SCALE: lambda t, s, c: call(
        Kube.scale, args=[t, c.original_replicas, ""], **_options(s)
    ),
    StepName.MAINTENANCE_MODE: lambda t, s, c: call(Kube.enter_maintenance, t, **_options(s)),
    StepName.END_MAINTENANCE: lambda t, s, c: call(Kube.end_maintenance, t, **_options(s)),
    StepName.VERIFY_CLIENTS: lambda t, s, c: call(
        Kube.verify_clients, args=[t, c.ready_deadline], **_options(s)
    ),
    StepName.RESTART_REPLICA: lambda t, s, c: call(
        Kube.restart_replica,
        args=[t, MemberParams.model_validate(s.params).address, c.ready_deadline],
        **_options(s),
    ),
}
READY_POLL_S = 1.0

# What a worker with Redis access (and nothing else) can do; with Kubernetes, all of it.
REDIS_STEPS = frozenset({StepName.DIAGNOSE, StepName.WAIT_FAILOVER, *REDIS_ACTIONS})
KUBERNETES_STEPS = frozenset(KUBERNETES_ACTIONS)


async def run_step(target: RedisTarget, step: Step, context: StepContext) -> StepResult:
    return await (REDIS_ACTIONS | KUBERNETES_ACTIONS)[step.name](target, step, context)
