"""Maintenance mode, the runbook's answer at 30 minutes: offered by an escalation level, behind
at least one approval, run on its own task beside the plan (which may be waiting for Redis
for a long time yet), and ended once Redis is back, before the hit rate is watched, or at the
end when the incident verifies healthy; otherwise the report says it is still on."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.diagnosis import Scenario
    from contracts.steps import Step, StepName
    from workflows.incident.errors import ContinueAsNew
    from workflows.incident.execution import Execution
    from workflows.incident.gate import ApprovalGate
    from workflows.incident.memory import IncidentMemory
    from workflows.incident.probes import Probes

PATCH_MAINTENANCE = "maintenance-mode-offer"


class Maintenance:
    def __init__(
        self, memory: IncidentMemory, probes: Probes, gate: ApprovalGate, execution: Execution
    ) -> None:
        self._m = memory
        self._probes = probes
        self._gate = gate
        self._execution = execution

    async def run(self) -> None:
        """From the offer to the decision and, if approved, the step: beside the plan."""
        m = self._m
        await workflow.wait_condition(lambda: m.maintenance == "offered")
        step = self._offered_step()
        try:
            approved = await self._gate.passes(step)
        except ContinueAsNew:
            return  # the wait goes on in the next run, which starts this task again
        if not approved:
            m.maintenance = "declined"
            return
        await self._execution.perform(step)
        m.maintenance = "on" if step.status == "succeeded" else "declined"

    def _offered_step(self) -> Step:
        """The step the offer added to the plan (at its end, so no index of the plan moves),
        or, in the run that makes the offer, a new one."""
        m = self._m
        for step in m.plan:
            if step.offered and step.name is StepName.MAINTENANCE_MODE:
                return step
        needed = max(1, m.config.policy.approvals.needed(StepName.MAINTENANCE_MODE))
        step = Step(
            name=StepName.MAINTENANCE_MODE,
            title=f"Maintenance mode: {m.config.maintenance} (offered at 30 minutes)",
            destructive=True,
            requires_approval=True,
            approvals_needed=needed,
            offered=True,
        )
        m.plan.append(step)
        return step

    def leave_to_its_task(self, step: Step) -> None:
        """The plan's loop reached an offered step: it is this task's. Undecided by now (the
        plan is done), the offer is withdrawn."""
        m = self._m
        if step.status in ("planned", "pending_approval") and m.book is not None:
            m.book.withdraw(step.name)
            m.withdrawn[step.name] = "the incident's plan finished first"
            m.maintenance = "declined"

    async def end_if_back(self) -> None:
        """Before the hit rate is watched: Redis answers again, so the users come back."""
        if self._m.maintenance == "on" and (await self._probes.diagnose()).reachable:
            await self._end()

    async def close(self, verified: Scenario | None) -> None:
        """At the incident's end: still on, it ends if the incident verified healthy; else
        it stays, and the report says so with how to end it."""
        m = self._m
        for step in m.plan:
            if step.offered:
                self.leave_to_its_task(step)
        if m.maintenance != "on":
            return
        if verified is Scenario.HEALTHY:
            await self._end()
            return
        m.problems.append(
            f"maintenance mode is still on ({m.config.maintenance}): end it once Redis is back "
            "(put the values in the maintenance step's `before` back)"
        )

    async def _end(self) -> None:
        m = self._m
        step = Step(name=StepName.END_MAINTENANCE, title="End maintenance mode", offered=True)
        m.plan.append(step)
        await self._execution.perform(step)
        result = step.result
        ended = step.status == "succeeded" and result is not None and result.after.get("ended") != 0
        m.maintenance = "off" if ended else "stuck"
        if not ended:
            m.problems.append(f"maintenance mode could not be ended: {step.detail}")
