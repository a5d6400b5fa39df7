"""Continue-as-new: a long incident (an outage waiting for Redis, an alert storm) starts a
fresh run before its history grows too long, carrying everything it knows in Incident.carried.
The current step is re-entered; a pending approval keeps its original start, so its timeout
does not restart.

What is carried is trusted only when Temporal says this run continued from the run that wrote
it: anyone can start the workflow with a `carried` of their own, and a forged one (any plan,
any approvals) must run nothing. The policy is never carried; every run reads it afresh.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.decisions import Approval
    from contracts.steps import StepName
    from workflows.incident.alerts import AlertLedger
    from workflows.incident.memory import CarriedState
    from workflows.incident.state import IncidentState
    from workflows.runbook.approvals import ApprovalBook, State
    from workflows.runbook.plan import mark_unavailable, tighten_approvals

Trust = Literal["trusted", "legacy", "forged"]
FORGED_CARRY = "ForgedCarriedState"
# Histories written before carried state named its run replay with the config they carried.
PATCH_TRUSTED_CARRY = "carried-state-bound-to-its-run"


class IncidentCarry(IncidentState):
    _carry: Trust | None = None
    _carry_problem = ""
    _carried_approvals: tuple[list[Approval], dict[StepName, State]] | None = None

    def _accept_carried(self, raw: dict[str, object]) -> None:
        """In @workflow.init: restore only state Temporal vouches for; judge the rest in run."""
        try:
            carried = CarriedState.model_validate(raw)
        except ValidationError as err:
            self._carry, self._carry_problem = "forged", f"malformed: {err.errors()[0]['msg']}"
            return
        continued_from = workflow.info().continued_run_id
        if continued_from is None:
            self._carry, self._carry_problem = "forged", "this run was not continued from another"
        elif carried.from_run_id is None:
            self._carry = "legacy"
        elif carried.from_run_id != continued_from:
            self._carry = "forged"
            self._carry_problem = "it names a run other than the one this run continued from"
        else:
            self._carry = "trusted"
        if self._carry != "forged":
            self._restore(carried)

    def _refuse_untrusted_carry(self) -> None:
        """First thing in run: a forged carry fails the workflow before any activity."""
        legacy_replay = self._carry == "legacy" and not workflow.patched(PATCH_TRUSTED_CARRY)
        if self._carry == "trusted" or legacy_replay:
            return
        why = self._carry_problem or "it does not name the run that continued as new"
        raise ApplicationError(
            f"refused: the input's `carried` field is set by the workflow itself when it "
            f"continues as new, and this one was not ({why}). Nothing was run. Fix: start the "
            "incident without `carried`",
            type=FORGED_CARRY,
            non_retryable=True,
        )

    def _restore(self, c: CarriedState) -> None:
        """Pick up where the previous run stopped: same plan, approvals, timers' progress."""
        self._runs, self._started = c.runs, c.started_at
        self._scenario, self._reasons, self._plan = c.scenario, c.reasons, c.plan
        self._timeline, self._problems, self._analysis = c.timeline, c.problems, c.analysis
        self._omitted = c.timeline_omitted
        self._alerts = c.ledger or AlertLedger.of(c.alerts)
        self._triage, self._latest = c.triage, c.latest or c.triage
        self._approval_wait_s, self._original_replicas = c.approval_wait_s, c.original_replicas
        self._ready, self._stand_down, self._abort = c.ready, c.stand_down, c.abort
        self._withdrawn, self._pending_since = c.withdrawn, c.pending_since
        self._flaps = c.flaps
        self._escalations_sent, self._index, self._phase = (
            c.escalations_sent,
            c.next_step,
            "executing",
        )
        self._carried_approvals = (c.approvals, dict(c.closed))  # type: ignore[arg-type]
        if c.config is not None and c.from_run_id is None:  # an old history, replayed
            self._config = c.config
            self._open_carried_book()

    def _apply_config_to_carried_plan(self) -> None:
        """The policy of this run, read afresh, may ask more of the steps still to come."""
        still_to_come = self._plan[self._index :]
        tighten_approvals(still_to_come, self._config.policy)
        mark_unavailable(still_to_come, frozenset(self._config.available_steps))
        self._open_carried_book()

    def _open_carried_book(self) -> None:
        approvals, closed = self._carried_approvals or ([], {})
        self._book = ApprovalBook.for_plan(
            self._config.policy.approvals, self._incident.requested_by, self._plan
        )
        self._book.approvals = approvals
        self._book.closed = closed
        for decision in self._inbox:
            self._submit(decision)
        self._inbox.clear()

    async def _continue_as_new(self) -> None:
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        length = workflow.info().get_current_history_length()
        self._note("continued", f"history at {length} events: continuing as a new run")
        assert self._triage is not None and self._scenario is not None and self._book is not None
        carried = CarriedState(
            from_run_id=workflow.info().run_id,
            runs=self._runs + 1,
            started_at=self._started,
            scenario=self._scenario,
            reasons=self._reasons,
            plan=self._plan,
            next_step=self._index,
            timeline=self._timeline,
            timeline_omitted=self._omitted,
            ledger=self._alerts,
            approvals=self._book.approvals,
            closed=dict(self._book.closed),
            withdrawn=self._withdrawn,
            pending_since=self._pending_since,
            problems=self._problems,
            analysis=self._analysis,
            triage=self._triage,
            latest=self._latest,
            approval_wait_s=self._approval_wait_s,
            original_replicas=self._original_replicas,
            ready=self._ready,
            stand_down=self._stand_down,
            abort=self._abort,
            escalations_sent=self._escalations_sent,
            flaps=self._flaps,
        )
        workflow.continue_as_new(
            self._incident.model_copy(update={"carried": carried.model_dump(mode="json")})
        )
