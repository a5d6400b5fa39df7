"""Continue-as-new: a long incident (an outage waiting for Redis, an alert storm) starts a
fresh run before its history grows too long, carrying its memory whole in Incident.carried.
The current step is re-entered; a pending approval keeps its original start, so its timeout
does not restart.

What is carried is trusted only when Temporal says this run continued from the run that wrote
it: anyone can start the workflow with a `carried` of their own, and a forged one (any plan,
any approvals) must run nothing. The policy is never carried; every run reads it afresh.

A part that notices the history is too long raises ContinueAsNew (errors.py); the run loop
catches it and continues in one place, `Carry.continue_as_new`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.incident import Incident
    from workflows.incident.communication import Communication
    from workflows.incident.gate import open_book
    from workflows.incident.memory import IncidentMemory
    from workflows.runbook.plan import mark_unavailable, tighten_approvals

Trust = Literal["fresh", "trusted", "legacy", "forged"]
FORGED_CARRY = "ForgedCarriedState"
# Histories written before carried state named its run replay with the config they carried.
PATCH_TRUSTED_CARRY = "carried-state-bound-to-its-run"


@dataclass
class Carry:
    """Whether this run's memory came from its predecessor, and how it passes to the next."""

    trust: Trust
    problem: str = ""

    @staticmethod
    def remember(incident: Incident) -> tuple[IncidentMemory, Carry]:
        """In @workflow.init: a fresh memory, or the carried one Temporal vouches for (a forged
        one is judged in run, where it can fail the workflow)."""
        if incident.carried is None:
            return IncidentMemory.fresh(incident), Carry("fresh")
        try:
            memory = IncidentMemory.model_validate(incident.carried)
        except ValidationError as err:
            return IncidentMemory.fresh(incident), Carry("forged", f"malformed: {_first(err)}")
        if memory.triage is None or memory.scenario is None or not memory.plan:
            return IncidentMemory.fresh(incident), Carry("forged", "malformed: no plan")
        carry = Carry._trust(memory.from_run_id)
        if carry.trust == "forged":
            return IncidentMemory.fresh(incident), carry
        memory.incident, memory.phase = incident, "executing"
        memory.latest = memory.latest or memory.triage
        if "config" in memory.model_fields_set and memory.from_run_id is None:
            open_book(memory)  # an old history, replayed with the config it carried
        return memory, carry

    @staticmethod
    def _trust(from_run_id: str | None) -> Carry:
        continued_from = workflow.info().continued_run_id
        if continued_from is None:
            return Carry("forged", "this run was not continued from another")
        if from_run_id is None:
            return Carry("legacy")
        if from_run_id != continued_from:
            return Carry("forged", "it names a run other than the one this run continued from")
        return Carry("trusted")

    def refuse_untrusted(self) -> None:
        """First thing in run: a forged carry fails the workflow before any activity."""
        legacy_replay = self.trust == "legacy" and not workflow.patched(PATCH_TRUSTED_CARRY)
        if self.trust == "trusted" or legacy_replay:
            return
        why = self.problem or "it does not name the run that continued as new"
        raise ApplicationError(
            f"refused: the input's `carried` field is set by the workflow itself when it "
            f"continues as new, and this one was not ({why}). Nothing was run. Fix: start the "
            "incident without `carried`",
            type=FORGED_CARRY,
            non_retryable=True,
        )

    @staticmethod
    def apply_config(memory: IncidentMemory) -> None:
        """The policy of this run, read afresh, may ask more of the steps still to come."""
        still_to_come = memory.plan[memory.next_step :]
        tighten_approvals(still_to_come, memory.config.policy)
        mark_unavailable(still_to_come, frozenset(memory.config.available_steps))
        open_book(memory)

    @staticmethod
    async def continue_as_new(memory: IncidentMemory, communication: Communication) -> NoReturn:
        """The one place a run hands over: timers stopped, messages delivered, handlers done."""
        await communication.stop()
        await workflow.wait_condition(workflow.all_handlers_finished)
        length = workflow.info().get_current_history_length()
        memory.note("continued", f"history at {length} events: continuing as a new run")
        assert memory.triage is not None and memory.scenario is not None
        workflow.continue_as_new(memory.input.model_copy(update={"carried": memory.carried()}))


def _first(err: ValidationError) -> str:
    return str(err.errors()[0]["msg"])
