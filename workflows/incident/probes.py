"""What the workflow asks Redis and Kubernetes, and the step conditions judged on the answers.

A condition decides whether a step runs. Some are facts already in the plan (was the cache
flushed?); some need a fresh look at Redis; the outage ones wait for Redis on durable timers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.redis.diagnosis import RedisDiagnosisActivities
    from contracts.diagnosis import Diagnosis, Scenario
    from contracts.kubernetes import KubernetesFacts
    from contracts.steps import Condition, StepName
    from workflows.incident import retries
    from workflows.incident.state import IncidentState

# Conditions that are facts about the plan: the step they name succeeded.
DONE = {
    Condition.RESTARTED: StepName.RESTART,
    Condition.FLUSHED: StepName.FLUSH,
    Condition.FORCE_DELETED: StepName.FORCE_DELETE_POD,
    Condition.MEMORY_LIMIT_RAISED: StepName.RAISE_MEMORY_LIMIT,
}


class IncidentProbes(IncidentState):
    async def _diagnose(self) -> Diagnosis:
        diagnosis = await workflow.execute_activity_method(
            RedisDiagnosisActivities.diagnose_redis,
            self._target,
            start_to_close_timeout=retries.PROBE.timeout,
            retry_policy=retries.PROBE.retry,
        )
        self._previous, self._latest = self._latest, diagnosis
        state = "reachable" if diagnosis.reachable else "unreachable"
        self._note("diagnosed", f"Redis {state}, {len(diagnosis.findings)} findings")
        return diagnosis

    async def _inspect(self) -> KubernetesFacts:
        facts: KubernetesFacts = await workflow.execute_activity(
            "inspect_kubernetes",
            self._target,
            start_to_close_timeout=retries.PROBE.timeout,
            retry_policy=retries.PROBE.retry,
            result_type=KubernetesFacts,
        )
        pods = ", ".join(
            f"{p.name} {p.phase}{' ready' if p.ready else ''} restarts={p.restarts}"
            + (f" last={p.last_termination_reason}" if p.last_termination_reason else "")
            for p in facts.pods
        )
        pvcs = ", ".join(f"{v.name} {v.phase}" for v in facts.pvcs)
        self._note("inspected", f"Kubernetes: {facts.problem.value}; pods: {pods or 'none'}; "
                   f"PVCs: {pvcs or 'none'}; limit {facts.memory_limit}")  # fmt: skip
        return facts

    async def _holds(self, condition: Condition, wait: bool = True) -> bool:
        """Evaluate a step's condition now, with a fresh diagnosis where it needs one.
        Without `wait` (a step this worker cannot perform anyway), the conditions that wait
        for Redis to come back are judged on one look."""
        if condition in DONE:
            return DONE[condition] in self._done_steps()
        if condition is Condition.FALLBACK_ENTERED and self._cache_given_back():
            if (await self._diagnose()).reachable:
                return True
            self._flapped()  # the rest of this round gives way to the next one
            return False
        if condition is Condition.FALLBACK_ENTERED:
            within = self._config.policy.outage.wait_for_redis if wait else timedelta(0)
            return self._latest_succeeded(StepName.ENABLE_FALLBACK) and await self._redis_back(
                within, "in fallback, waiting for Redis"
            )
        if condition is Condition.STILL_DOWN_PAST_FALLBACK_DEADLINE:
            if self._ready:  # the last rollout came back and answered PING
                return False
            deadline = self._started + self._config.policy.outage.fallback_after
            within = deadline - workflow.now() if wait else timedelta(0)
            return not await self._redis_back(within, "before fallback")
        # Just measured by the step before: no need to ask Redis again.
        if condition is Condition.STILL_DOWN and self._answered is not None:
            return not self._answered
        if condition is Condition.RESTART_FAILED and self._ready is not None:
            return not self._ready  # wait_ready checks the rollout and PING together
        diagnosis = await self._diagnose()
        if condition in (Condition.STILL_OUT_OF_MEMORY, Condition.STILL_OUT_OF_MEMORY_AFTER_FLUSH):
            fired = self._explain(diagnosis, since=self._previous)
            return any(s is Scenario.OUT_OF_MEMORY for s, _ in fired)
        if condition is Condition.MEMORY_FRAGMENTED:
            ratio = diagnosis.info.mem_fragmentation_ratio if diagnosis.info else 0.0
            return ratio > self._config.policy.thresholds.fragmentation_ratio
        return not diagnosis.reachable  # STILL_DOWN, RESTART_FAILED

    async def _redis_back(self, within: timedelta, why: str) -> bool:
        """Check Redis until it answers or `within` passes (durable timers between checks);
        an abort ends the wait early."""
        deadline = workflow.now() + within
        while True:
            if (await self._diagnose()).reachable:
                return True
            left = deadline - workflow.now()
            if left.total_seconds() <= 0 or self._abort is not None:
                return False
            if self._history_too_long():
                await self._continue_as_new()
            self._note("waiting", f"Redis still down ({why}); next check in {self._poll(left)}")
            woken = self._woken_by(self._stand_down or self._legacy_judgement)
            with contextlib.suppress(TimeoutError):  # an abort or a stand-down: look at once
                await workflow.wait_condition(
                    woken,
                    timeout=self._poll(left),
                )

    def _woken_by(self, stood_down: bool) -> Callable[[], bool]:
        """An abort, or a stand-down that happened during this wait, ends it at once."""
        return lambda: self._abort is not None or (self._stand_down and not stood_down)

    def _poll(self, left: timedelta) -> timedelta:
        return min(self._config.policy.outage.poll, left)
