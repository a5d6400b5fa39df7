"""Continue-as-new: a long incident (an outage waiting for Redis, an alert storm) starts a
fresh run before its history grows too long, carrying everything it knows in Incident.carried.
The current step is re-entered; a pending approval keeps its original start, so its timeout
does not restart."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.carried import CarriedState
    from workflows.approvals import ApprovalBook
    from workflows.incident_state import IncidentState


class IncidentCarry(IncidentState):
    def _restore(self, c: CarriedState) -> None:
        """Pick up where the previous run stopped: same plan, approvals, timers' progress."""
        self._runs, self._started, self._config = c.runs, c.started_at, c.config
        self._scenario, self._reasons, self._plan = c.scenario, c.reasons, c.plan
        self._timeline, self._problems, self._analysis = c.timeline, c.problems, c.analysis
        self._alerts = {a.fingerprint: a for a in c.alerts}
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
        self._book = ApprovalBook.for_plan(
            c.config.policy.approvals, self._incident.requested_by, c.plan
        )
        self._book.approvals = c.approvals
        self._book.closed = dict(c.closed)  # type: ignore[arg-type]

    async def _continue_as_new(self) -> None:
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        length = workflow.info().get_current_history_length()
        self._note("continued", f"history at {length} events: continuing as a new run")
        assert self._triage is not None and self._scenario is not None and self._book is not None
        carried = CarriedState(
            runs=self._runs + 1,
            started_at=self._started,
            config=self._config,
            scenario=self._scenario,
            reasons=self._reasons,
            plan=self._plan,
            next_step=self._index,
            timeline=self._timeline,
            alerts=list(self._alerts.values()),
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
