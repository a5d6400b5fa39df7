"""Triage: the worker's config for this target, a look at Redis and Kubernetes (twice when
only the worker sees Redis down), the scenario and its plan, and the evidence a person needs
to judge the fix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.policy import PolicyActivities, RunbookConfig
    from activities.redis.analysis import RedisAnalysisActivities as Analyses
    from activities.targets import UNKNOWN_TARGET
    from contracts.diagnosis import Diagnosis, Scenario
    from contracts.steps import StepName
    from contracts.target import RedisTarget
    from workflows.incident import retries
    from workflows.incident.errors import cause_of
    from workflows.incident.gate import open_book
    from workflows.incident.memory import IncidentMemory
    from workflows.incident.probes import Probes
    from workflows.runbook.classify import down_corroborated
    from workflows.runbook.plan import mark_unavailable, plan_for

Report = Callable[[Analyses, RedisTarget], Awaitable[BaseModel]]
# The read-only report that helps a person judge each scenario's fix: (Analysis field, activity).
EVIDENCE: dict[Scenario, tuple[str, Report]] = {
    Scenario.OUT_OF_MEMORY: ("keyspace", Analyses.keyspace_report),
    Scenario.TOO_MANY_CONNECTIONS: ("clients", Analyses.client_report),
    Scenario.SLOW_COMMANDS: ("slowlog", Analyses.slowlog_report),
    Scenario.HIGH_LATENCY: ("slowlog", Analyses.slowlog_report),
}
PATCH_LOCAL_CONFIG = "config-as-local-activity"


class Triage:
    def __init__(self, memory: IncidentMemory, probes: Probes) -> None:
        self._m = memory
        self._probes = probes

    async def load_config(self) -> RunbookConfig:
        """A local activity: the worker's own settings need no task queue round trip. It
        refuses a target the worker is not configured for, before anything contacts it. The
        patch keeps incidents started before the local activity replaying as they ran."""
        target = self._m.input.target
        try:
            if workflow.patched(PATCH_LOCAL_CONFIG):
                return await workflow.execute_local_activity_method(
                    PolicyActivities.runbook_config,
                    target,
                    start_to_close_timeout=retries.CONFIG.timeout,
                    retry_policy=retries.CONFIG.retry,
                )
            return await workflow.execute_activity_method(
                PolicyActivities.runbook_config,
                target,
                start_to_close_timeout=retries.CONFIG.timeout,
                retry_policy=retries.CONFIG.retry,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == UNKNOWN_TARGET:
                raise ApplicationError(
                    cause.message, type=UNKNOWN_TARGET, non_retryable=True
                ) from None
            raise

    async def triage_and_plan(self) -> Diagnosis:
        began = workflow.now()
        diagnosis = await self._probes.look()
        fired = self._m.explain(diagnosis)
        if self._worth_a_second_look(diagnosis, fired):
            wait = self._m.config.policy.thresholds.vantage_recheck
            self._m.note("vantage", f"{fired[0][1]}; looking again in {wait}")
            await workflow.sleep(wait)
            diagnosis = await self._probes.look()
            fired = self._m.explain(diagnosis)
        self._m.triage = diagnosis
        self._m.phase = "planning"
        self._m.scenario = fired[0][0] if fired else Scenario.HEALTHY
        self._m.reasons = [f"{scenario.value}: {reason}" for scenario, reason in fired]
        why = fired[0][1] if fired else "no threshold crossed"
        self._m.note("classified", f"{self._m.scenario.value}: {why}")
        corroborated = down_corroborated(self._m.judged(diagnosis))
        plan = plan_for(
            self._m.scenario,
            diagnosis,
            self._m.config.policy,
            corroborated,
            self._m.legacy_judgement,
        )
        self._m.plan = mark_unavailable(plan, frozenset(self._m.config.available_steps))
        self._m.note("planned", ", ".join(s.name.value for s in self._m.plan))
        open_book(self._m)
        await self._gather_evidence()
        self._m.mark(
            self._m.plan[0], "succeeded", began, detail="; ".join(self._m.reasons) or "healthy"
        )
        return diagnosis

    def _worth_a_second_look(self, diagnosis: Diagnosis, fired: list[tuple[Scenario, str]]) -> bool:
        """Down as only the worker sees it: Kubernetes calls Redis Ready (its readiness probe may
        not have failed yet), or Kubernetes could not be read (a passing API error). One more
        look decides between a restart and a person."""
        if not fired or self._m.legacy_judgement:
            return False
        if fired[0][0] is Scenario.UNREACHABLE_FROM_RUNBOOK:
            return True
        return (
            fired[0][0] is Scenario.REDIS_DOWN
            and StepName.RESTART in self._m.config.available_steps
            and not down_corroborated(self._m.judged(diagnosis))
        )

    async def _gather_evidence(self) -> None:
        report = EVIDENCE.get(self._m.scenario or Scenario.HEALTHY)
        if report is None:
            return
        field, activity = report
        try:
            result = await workflow.execute_activity_method(
                activity,
                self._m.target,
                start_to_close_timeout=retries.PROBE.timeout,
                retry_policy=retries.PROBE.retry,
            )
        except ActivityError as err:
            self._m.note("evidence", f"{field} report failed: {cause_of(err)}")
            return
        setattr(self._m.analysis, field, result)
        self._m.note("evidence", f"{field} report gathered")
