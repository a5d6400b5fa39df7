"""Running one step: its condition, the approval gate, the activity, the record; and what
undoes the incident's own changes at its end (the API's cache and replicas after an abort or a
stand-down, persistence paused by the plan), so nothing is left degraded unsaid."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.diagnosis import Scenario
    from contracts.kubernetes import FallbackResult, ReadinessResult
    from contracts.steps import Step, StepName, StepResult
    from workflows.incident.errors import cause_of
    from workflows.incident.failover import wait_failover
    from workflows.incident.flap import flapped
    from workflows.incident.gate import ApprovalGate
    from workflows.incident.memory import IncidentMemory
    from workflows.incident.metrics import IncidentMetrics
    from workflows.incident.probes import Probes
    from workflows.incident.steps import StepContext, run_step
    from workflows.runbook.classify import stuck_pod

FRESH_TRIAGE = timedelta(seconds=10)
PATCH_PING_FROM_TRIAGE = "first-ping-from-fresh-triage"
POD_STEPS = frozenset({StepName.FORCE_DELETE_POD})
RECOVERY = frozenset({StepName.WARM, StepName.RE_ENABLE, StepName.SCALE, StepName.WATCH_HIT_RATE})


class Execution:
    def __init__(
        self, memory: IncidentMemory, probes: Probes, gate: ApprovalGate, metrics: IncidentMetrics
    ) -> None:
        self._m = memory
        self._probes = probes
        self._gate = gate
        self._metrics = metrics

    async def execute(self, step: Step) -> None:
        self._m.current = step.name
        if step.condition and not await self._probes.holds(step.condition, wait=step.available):
            return self._m.skip(step, f"not needed: it runs when {step.when}")
        if not step.available:
            self._m.skip(step, "not available on this worker (needs an integration it lacks)")
            if step.name not in RECOVERY and step.name is not StepName.WAIT_READY:
                self._m.problems.append(f"{step.name.value} was needed but is not available")
            return None
        if step.name is StepName.RAISE_MEMORY_LIMIT and "limit" not in step.params:
            why = (
                f"the limit is at the policy's ceiling ({step.params['ceiling']})"
                if "ceiling" in step.params
                else "the container's memory limit is unknown"
            )
            self._m.skip(step, f"{why}: raise it by hand")
            self._m.problems.append(f"raise_memory_limit was needed but {why}")
            return None
        if step.requires_approval and not await self._gate.passes(step):
            return None
        if (
            step.requires_approval
            and step.condition
            and not await self._probes.holds(step.condition)
        ):
            return self._m.skip(step, f"no longer needed after approval: {step.when} no more")
        await self.perform(step)
        return None

    async def perform(self, step: Step) -> None:
        """Run the step's activity and record it (and count it, once it ran)."""
        began = workflow.now()
        await self._run(step, began)
        if step.status in ("succeeded", "failed"):
            self._metrics.step(step, began)
        if step.name is StepName.RESTART and step.status == "succeeded":
            self._metrics.restarts()
        switched = step.name in (StepName.ENABLE_FALLBACK, StepName.RE_ENABLE)
        if step.status == "succeeded" and switched:
            self._metrics.fallback(step.name is StepName.ENABLE_FALLBACK)

    async def _run(self, step: Step, began: datetime) -> None:
        step.status, step.started_at = "running", began
        self._m.note("step", f"{step.name.value}: started")
        try:
            if step.name is StepName.DIAGNOSE:
                result = await self._verify()
            elif step.name is StepName.WAIT_FAILOVER:
                result = await wait_failover(self._m, self._probes, step)
            elif (seen := self._fresh_triage_answer(step)) is not None:
                result = seen
            elif not (context := await self._context(step)).pod and step.name in POD_STEPS:
                return self._m.skip(step, "no pod is stuck (every pod Ready): nothing to delete")
            else:
                result = await run_step(self._m.target, step, context)
        except ActivityError as err:
            detail = cause_of(err)
            self._m.mark(step, "failed", began, detail=detail)
            self._m.problems.append(f"{step.name.value} failed: {detail}")
            return
        step.result = result
        self._m.answered = bool(result.after.get("ok")) if step.name is StepName.PING else None
        if isinstance(result, FallbackResult) and self._m.original_replicas is None:
            # The first fallback's count: after a flap caught before the scale back, the API
            # still runs the fallback replicas, which the next fallback would take as original.
            self._m.original_replicas = result.original_replicas
        if step.name is StepName.WAIT_FAILOVER and not result.after.get("promoted"):
            self._m.mark(step, "failed", began, detail=result.summary)
            self._m.problems.append(f"wait_failover: {result.summary}")
            return
        if isinstance(result, ReadinessResult):
            self._m.ready = result.ready
            if not result.ready:  # a finding for the next step's condition, not a failure
                self._m.mark(step, "failed", began, detail=f"not ready: {result.reason}")
                return
        self._m.mark(step, "succeeded", began, detail=result.summary)
        down = self._m.latest is not None and not self._m.latest.reachable
        if step is self._m.last_planned() and down and self._m.cache_given_back():
            flapped(self._m)

    def _fresh_triage_answer(self, step: Step) -> StepResult | None:
        """The first PING of the redis_down path confirms what triage measured a moment ago
        (several PINGs): within FRESH_TRIAGE, triage's answer is the step's result, one
        round trip sooner. Incidents started before this change replay their PING."""
        triage = self._m.triage
        if step.name is not StepName.PING or triage is None or triage.reachable:
            return None
        age = workflow.now() - triage.taken_at
        if age > FRESH_TRIAGE or triage is not self._m.latest:
            return None
        if not workflow.patched(PATCH_PING_FROM_TRIAGE):
            return None
        why = next((f.message for f in triage.findings), "unreachable")
        return StepResult(
            changed=False,
            summary=f"no answer at triage {age.total_seconds():.1f}s ago: {why}",
            after={"ok": 0, "from_triage": 1},
        )

    async def restore_api(self) -> None:
        """An abort or a stand-down mid-fallback still gives the API its cache and its
        replicas back."""
        if StepName.ENABLE_FALLBACK not in self._m.done_steps():
            return
        why = "abort" if self._m.abort is not None else "stand_down"
        for step in self._m.plan:
            if step.name in (StepName.RE_ENABLE, StepName.SCALE) and step.status != "succeeded":
                self._m.note(why, f"restoring the API ({why.replace('_', '-')}): {step.name.value}")
                await self.perform(step)

    async def restore_api_after_stand_down(self) -> None:
        """Every alert resolved mid-fallback: the API gets its cache and replicas back before
        the incident ends, once Redis answers the runbook too; if it does not, the API stays
        on the database and the report says how to restore it."""
        if not self._fallback_in_force():
            return
        if (await self._probes.diagnose()).reachable:
            await self.restore_api()
            return
        self._m.problems.append(
            "every alert resolved, but Redis does not answer the runbook: the API stays on the "
            f"database (to restore: CACHE_ENABLED=true, {self._m.original_replicas or '?'} "
            "replicas)"
        )

    def _fallback_in_force(self) -> bool:
        """A fallback was entered and the cache not given back since."""
        return StepName.ENABLE_FALLBACK in self._m.done_steps() and not self._m.cache_given_back()

    async def restore_persistence(self, verified: Scenario | None) -> None:
        """Snapshots paused by the plan come back when the incident ends healthy; otherwise the
        pause stays (turning a failing save back on would block writes again) and the report
        says how to undo it, so nothing is left changed unsaid."""
        paused = [
            s
            for s in self._m.plan
            if s.name is StepName.TUNE_PERSISTENCE
            and s.status == "succeeded"
            and s.params.get("save") == ""
            and s.result is not None
            and s.result.changed
        ]
        if not paused or self._m.legacy_judgement or paused[0].result is None:
            return
        before = {k: v for k, v in paused[0].result.before.items() if v is not None}
        if verified is not Scenario.HEALTHY:
            undo = ", ".join(f"CONFIG SET {k} {v!r}" for k, v in before.items())
            self._m.problems.append(f"persistence is still paused: once the cause is fixed, {undo}")
            return
        restore = Step(
            name=StepName.TUNE_PERSISTENCE,
            title="Restore persistence as it was before the incident",
            params=before,
        )
        self._m.plan.append(restore)
        await self.perform(restore)

    async def _context(self, step: Step) -> StepContext:
        """What only this incident knows; a force delete first looks at the pod again."""
        pod, uid = "", ""
        if step.name is StepName.FORCE_DELETE_POD:
            facts = await self._probes.inspect()
            chosen = facts.pods[0] if self._m.legacy_judgement and facts.pods else stuck_pod(facts)
            if chosen is not None:
                pod, uid = chosen.name, chosen.uid or ""
        info = self._m.latest.info if self._m.latest is not None else None
        return StepContext(
            server_run_id=info.run_id if info else "",
            flushes_before=info.flushdb_calls if info else -1,
            stamp=self._m.started_at.isoformat(),
            ready_deadline=workflow.now() + self._m.config.policy.outage.ready_timeout,
            pod=pod,
            uid=uid,
            original_replicas=self._m.original_replicas,
        )

    async def _verify(self) -> StepResult:
        if self._m.scenario is Scenario.APPLICATION_CUT_OFF:
            diagnosis = await self._probes.look()  # only Kubernetes says if it still is
        else:
            diagnosis = await self._probes.diagnose()
        fired = self._m.explain(diagnosis, since=self._m.previous)
        if not fired:
            return StepResult(changed=False, summary="healthy: no threshold crossed")
        return StepResult(changed=False, summary="; ".join(f"{s.value}: {r}" for s, r in fired))
