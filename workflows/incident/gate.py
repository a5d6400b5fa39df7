"""The approval gate: a destructive step waits here for the approvals the policy demands.

Decisions arrive by signal or update at any time (even before the plan exists: they wait in
the inbox); the ApprovalBook judges them; a timeout is a "no" and an escalation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.decisions import Decision, PendingApproval
    from contracts.steps import Step
    from workflows.incident.communication import Communication
    from workflows.incident.errors import ContinueAsNew
    from workflows.incident.memory import IncidentMemory
    from workflows.incident.metrics import IncidentMetrics
    from workflows.incident.payloads import Malformed, parse
    from workflows.incident.proof import PATCH_BOUND_DECISIONS, proven, unbound
    from workflows.runbook.approvals import ApprovalBook, Verdict


class ApprovalGate:
    def __init__(
        self, memory: IncidentMemory, communication: Communication, metrics: IncidentMetrics
    ) -> None:
        self._memory = memory
        self._communication = communication
        self._metrics = metrics

    async def passes(self, step: Step) -> bool:
        """Wait for the approvals the policy demands; a timeout is a no, and an escalation."""
        m = self._memory
        book = m.book
        assert book is not None
        timeout = m.config.policy.approvals.timeout
        book.require(step.name, step.approvals_needed)
        self._expire_preapprovals(step, book)
        if book.state(step.name) == "waiting":
            await self._wait(step, book, within=timeout)
        state = book.state(step.name)
        if state == "withdrawn":
            m.skip(step, f"approval withdrawn: {m.withdrawn.get(step.name, '')}")
            return False
        if state == "approved":
            return True
        m.skip(step, f"not approved ({state})")
        m.problems.append(f"{step.name.value} was not approved ({state}): escalate")
        return False

    def _expire_preapprovals(self, step: Step, book: ApprovalBook) -> None:
        """An approval given long before its step waits was given on other evidence: it stops
        counting past approvals.preapproval_expiry (counted from when the step began waiting,
        so a wait carried into a new run keeps the approvals given during it)."""
        if not workflow.patched(PATCH_BOUND_DECISIONS):
            return
        m = self._memory
        expiry = m.config.policy.approvals.preapproval_expiry
        opened = m.pending_since.get(step.name) or workflow.now()
        for stale in book.expire_preapprovals(step.name, opened - expiry):
            m.note("approval_expired", f"{step.name.value}: {stale.approver}'s approval from "
                   f"{stale.at:%H:%M:%S} is older than {expiry}: approve again")  # fmt: skip

    async def _wait(self, step: Step, book: ApprovalBook, within: timedelta) -> None:
        m = self._memory
        carried_since = m.pending_since.pop(step.name, None)
        since = carried_since or workflow.now()
        m.pending[step.name] = PendingApproval(
            step=step.name,
            reason="; ".join(m.reasons[:1]) or step.title,
            action=step.title,
            since=since,
            approvals_needed=step.approvals_needed,
            verified_only=step.name in m.config.policy.approvals.verified_only,
        )
        step.status = "pending_approval"
        self._metrics.pending_changed()
        if carried_since is None:
            m.note("approval_requested", f"{step.name.value}: {step.title} (within {within})")
            self._communication.notify(
                "approval_request", f"Approval needed: {step.name.value} ({step.title})"
            )
        try:
            await workflow.wait_condition(
                lambda: book.state(step.name) != "waiting" or m.history_too_long(),
                timeout=max(since + within - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            book.expire(step.name)
            m.note("approval_timeout", f"{step.name.value}: no decision within {within}")
        waited = m.pending.pop(step.name)
        self._metrics.pending_changed()
        if book.state(step.name) == "waiting":  # woken to continue as new: wait on there
            m.pending_since[step.name] = waited.since
            raise ContinueAsNew
        m.approval_wait_s += (workflow.now() - waited.since).total_seconds()

    def withdraw_pending(self, why: str) -> None:
        """At once, in the handler: an approval arriving a moment later must be refused."""
        m = self._memory
        if m.book is None:
            return
        for step in list(m.pending):
            m.book.withdraw(step)
            m.withdrawn[step] = why
            m.note("approval_withdrawn", f"{step.value}: {why}")

    def signalled(self, payload: Any, decision: str) -> None:
        """A raw signal: the name as typed. One that claims a proof is refused (a front door
        sends the `decide` update, whose attestation the worker checks)."""
        parsed = parse(Decision, payload, decision=decision)
        if isinstance(parsed, Malformed):
            self._memory.note("approval_refused", f"malformed {decision}: {parsed.problems}",
                              actor=parsed.actor("approver"))  # fmt: skip
            return
        if parsed.attestation is not None or parsed.proof != "unverified":
            self._refuse(parsed, "a signal cannot carry a verified decision: it is counted only "
                         "through the `decide` update a front door sends")  # fmt: skip
            return
        self._bound(parsed)

    async def decide(self, decision: Decision) -> Verdict:
        """The `decide` update: an attested decision is checked (a local activity holds the
        key) and counted with the identity it proves."""
        checked = await proven(decision)
        if isinstance(checked, str):
            return self._refuse(decision, checked)
        return self._bound(checked)

    def _bound(self, decision: Decision) -> Verdict:
        why = unbound(self._memory, decision)
        if why:
            return self._refuse(decision, why)
        verdict = submit(self._memory, decision)
        self._metrics.decided(decision, verdict.accepted)
        return verdict

    def _refuse(self, decision: Decision, why: str) -> Verdict:
        self._memory.note("approval_refused", f"{decision.step.value}: {why}",
                          actor=decision.approver)  # fmt: skip
        self._metrics.decided(decision, accepted=False)
        self._metrics.refused("decision")
        return Verdict(False, why)


def submit(memory: IncidentMemory, decision: Decision) -> Verdict:
    """Judge a decision now, or keep it in the inbox until the plan (and its book) exists."""
    if memory.book is None:
        memory.inbox.append(decision)
        return Verdict(True, "recorded: it is applied as soon as the plan is ready")
    verdict = memory.book.submit(decision, workflow.now())
    comment = f" ({decision.comment})" if decision.comment else ""
    kind = "approval" if verdict.accepted else "approval_refused"
    memory.note(kind, verdict.reason + comment, actor=decision.approver)
    return verdict


def open_book(memory: IncidentMemory) -> None:
    """The approval book over the memory's approvals (new or carried), then the decisions that
    arrived before it."""
    memory.book = ApprovalBook.for_plan(
        memory.config.policy.approvals,
        memory.input.requested_by,
        memory.plan,
        approvals=memory.approvals,
        closed=memory.closed,
    )
    for decision in memory.inbox:
        submit(memory, decision)
    memory.inbox.clear()
