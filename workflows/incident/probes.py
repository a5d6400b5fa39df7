"""What the workflow asks Redis and Kubernetes, and the step conditions judged on the answers.

A condition decides whether a step runs. Some are facts already in the plan (was the cache
flushed?); some need a fresh look at Redis; the outage ones wait for Redis on durable timers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kubernetes.steps import KubernetesActivities
    from activities.redis.diagnosis import RedisDiagnosisActivities
    from contracts.diagnosis import Diagnosis, Scenario
    from contracts.kubernetes import KubernetesFacts
    from contracts.steps import Condition, StepName
    from contracts.target import RedisTarget
    from workflows.incident import retries
    from workflows.incident.errors import ContinueAsNew
    from workflows.incident.flap import flapped
    from workflows.incident.memory import IncidentMemory

# Conditions that are facts about the plan: the step they name succeeded.
DONE = {
    Condition.RESTARTED: StepName.RESTART,
    Condition.FLUSHED: StepName.FLUSH,
    Condition.FORCE_DELETED: StepName.FORCE_DELETE_POD,
    Condition.MEMORY_LIMIT_RAISED: StepName.RAISE_MEMORY_LIMIT,
    Condition.FAILED_OVER: StepName.WAIT_FAILOVER,
}


PATCH_LOCAL_READS = "reads-as-local-activities"
T = TypeVar("T")


async def read(method: Callable[..., Any], target: RedisTarget, result: type[T], local: bool) -> T:
    """A read-only look (a few seconds at most, no heartbeat) run as a local activity: the
    worker runs it at once, without a round trip through the server's task queue, which is
    the time to mitigate of a killed Redis. `local` is the run's PATCH_LOCAL_READS, taken at
    its start: histories from before replay their activities."""
    if local:
        found = await workflow.execute_local_activity_method(
            method,
            target,
            start_to_close_timeout=retries.PROBE.timeout,
            retry_policy=retries.PROBE.retry,
        )
    else:
        found = await workflow.execute_activity_method(
            method,
            target,
            start_to_close_timeout=retries.PROBE.timeout,
            retry_policy=retries.PROBE.retry,
        )
    return cast(T, found)


class Probes:
    def __init__(self, memory: IncidentMemory) -> None:
        self._memory = memory

    async def diagnose(self) -> Diagnosis:
        m = self._memory
        diagnosis = await read(
            RedisDiagnosisActivities.diagnose_redis, m.target, Diagnosis, m.local_reads
        )
        m.previous, m.latest = m.latest, diagnosis
        m.sampled(diagnosis)
        state = "reachable" if diagnosis.reachable else "unreachable"
        m.note("diagnosed", f"Redis {state}, {len(diagnosis.findings)} findings")
        return diagnosis

    async def look(self) -> Diagnosis:
        """Redis and, where this worker has it, Kubernetes, in parallel: one diagnosis."""
        m = self._memory
        if StepName.RESTART not in m.config.available_steps:
            return await self.diagnose()
        found, kube = await asyncio.gather(self.diagnose(), self.inspect())
        m.latest = found.model_copy(update={"kubernetes": kube})
        return m.latest

    async def inspect(self) -> KubernetesFacts:
        m = self._memory
        facts = await read(
            KubernetesActivities.inspect_kubernetes, m.target, KubernetesFacts, m.local_reads
        )
        pods = ", ".join(
            f"{p.name} {p.phase}{' ready' if p.ready else ''} restarts={p.restarts}"
            + (f" last={p.last_termination_reason}" if p.last_termination_reason else "")
            for p in facts.pods
        )
        pvcs = ", ".join(f"{v.name} {v.phase}" for v in facts.pvcs)
        self._memory.note("inspected", f"Kubernetes: {facts.problem.value}; pods: "
                          f"{pods or 'none'}; PVCs: {pvcs or 'none'}; limit "
                          f"{facts.memory_limit}")  # fmt: skip
        return facts

    async def holds(self, condition: Condition, wait: bool = True) -> bool:
        """Evaluate a step's condition now, with a fresh diagnosis where it needs one.
        Without `wait` (a step this worker cannot perform anyway), the conditions that wait
        for Redis to come back are judged on one look."""
        m = self._memory
        if condition in DONE:
            return DONE[condition] in m.done_steps()
        if condition is Condition.FALLBACK_ENTERED and m.cache_given_back():
            if (await self.diagnose()).reachable:
                return True
            flapped(m)  # the rest of this round gives way to the next one
            return False
        if condition is Condition.FALLBACK_ENTERED:
            within = m.config.policy.outage.wait_for_redis if wait else timedelta(0)
            return m.latest_succeeded(StepName.ENABLE_FALLBACK) and await self.redis_back(
                within, "in fallback, waiting for Redis"
            )
        if condition is Condition.STILL_DOWN_PAST_FALLBACK_DEADLINE:
            if m.ready:  # the last rollout came back and answered PING
                return False
            deadline = m.started_at + m.config.policy.outage.fallback_after
            within = deadline - workflow.now() if wait else timedelta(0)
            return not await self.redis_back(within, "before fallback")
        return await self._measured(condition)

    async def _measured(self, condition: Condition) -> bool:
        """The conditions judged on what Redis says now (or what the step before measured)."""
        m = self._memory
        if condition is Condition.STILL_DOWN and m.answered is not None:
            return not m.answered  # just measured by the step before
        if condition is Condition.RESTART_FAILED and m.ready is not None:
            return not m.ready  # wait_ready checks the rollout and PING together
        diagnosis = await self.diagnose()
        if condition in (Condition.STILL_OUT_OF_MEMORY, Condition.STILL_OUT_OF_MEMORY_AFTER_FLUSH):
            fired = m.explain(diagnosis, since=m.previous)
            return any(s is Scenario.OUT_OF_MEMORY for s, _ in fired)
        if condition is Condition.MEMORY_FRAGMENTED:
            ratio = diagnosis.info.mem_fragmentation_ratio if diagnosis.info else 0.0
            return ratio > m.config.policy.thresholds.fragmentation_ratio
        return not diagnosis.reachable  # STILL_DOWN, RESTART_FAILED

    async def redis_back(self, within: timedelta, why: str, every: timedelta | None = None) -> bool:
        """Check Redis until it answers or `within` passes (durable timers between checks,
        `every` apart, else outage.poll); an abort ends the wait early."""
        m = self._memory
        deadline = workflow.now() + within
        while True:
            if (await self.diagnose()).reachable:
                return True
            left = deadline - workflow.now()
            if left.total_seconds() <= 0 or m.abort is not None:
                return False
            if m.history_too_long():
                raise ContinueAsNew
            pause = min(every, left) if every is not None else self._poll(left)
            m.note("waiting", f"Redis still down ({why}); next check in {pause}")
            woken = self._woken_by(m.stand_down or m.legacy_judgement)
            with contextlib.suppress(TimeoutError):  # an abort or a stand-down: look at once
                await workflow.wait_condition(woken, timeout=pause)

    def _woken_by(self, stood_down: bool) -> Callable[[], bool]:
        """An abort, or a stand-down that happened during this wait, ends it at once."""
        m = self._memory
        return lambda: m.abort is not None or (m.stand_down and not stood_down)

    def _poll(self, left: timedelta) -> timedelta:
        return min(self._memory.config.policy.outage.poll, left)
