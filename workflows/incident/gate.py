"""The approval gate: a destructive step waits here for the approvals the policy demands.

Decisions arrive by signal or update at any time (even before the plan exists: they wait in
the inbox); the ApprovalBook judges them; a timeout is a "no" and an escalation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.decisions import Decision, PendingApproval
    from contracts.steps import Step
    from workflows.incident.state import IncidentState
    from workflows.runbook.approvals import Verdict


class ApprovalGate(IncidentState):
    async def _gate(self, step: Step) -> bool:
        """Wait for the approvals the policy demands; a timeout is a no, and an escalation."""
        book = self._book
        assert book is not None
        timeout = self._config.policy.approvals.timeout
        book.require(step.name, step.approvals_needed)
        if book.state(step.name) == "waiting":
            carried_since = self._pending_since.pop(step.name, None)
            since = carried_since or workflow.now()
            self._pending[step.name] = PendingApproval(
                step=step.name,
                reason="; ".join(self._reasons[:1]) or step.title,
                action=step.title,
                since=since,
                approvals_needed=step.approvals_needed,
            )
            step.status = "pending_approval"
            if carried_since is None:
                self._note(
                    "approval_requested", f"{step.name.value}: {step.title} (within {timeout})"
                )
                self._notify(
                    "approval_request", f"Approval needed: {step.name.value} ({step.title})"
                )
            try:
                await workflow.wait_condition(
                    lambda: book.state(step.name) != "waiting" or self._history_too_long(),
                    timeout=max(since + timeout - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                book.expire(step.name)
                self._note("approval_timeout", f"{step.name.value}: no decision within {timeout}")
            waited = self._pending.pop(step.name)
            if book.state(step.name) == "waiting":  # woken to continue as new: wait on there
                self._pending_since[step.name] = waited.since
                await self._continue_as_new()
            self._approval_wait_s += (workflow.now() - waited.since).total_seconds()
        state = book.state(step.name)
        if state == "withdrawn":
            self._skip(step, f"approval withdrawn: {self._withdrawn.get(step.name, '')}")
            return False
        if state == "approved":
            return True
        self._skip(step, f"not approved ({state})")
        self._problems.append(f"{step.name.value} was not approved ({state}): escalate")
        return False

    def _withdraw_pending(self, why: str) -> None:
        """At once, in the handler: an approval arriving a moment later must be refused."""
        if self._book is None:
            return
        for step in list(self._pending):
            self._book.withdraw(step)
            self._withdrawn[step] = why
            self._note("approval_withdrawn", f"{step.value}: {why}")

    def _signalled(self, payload: Any, decision: str) -> None:
        """Signals cannot answer, so a malformed one is recorded rather than dropped unseen."""
        fields = payload if isinstance(payload, dict) else {}
        try:
            parsed = Decision.model_validate({**fields, "decision": decision})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            self._note("approval_refused", f"malformed {decision}: {problems}",
                       actor=str(fields.get("approver", "unknown")))  # fmt: skip
            return
        self._submit(parsed)

    def _submit(self, decision: Decision) -> Verdict:
        if self._book is None:
            self._inbox.append(decision)
            return Verdict(True, "recorded: it is applied as soon as the plan is ready")
        verdict = self._book.submit(decision, workflow.now())
        comment = f" ({decision.comment})" if decision.comment else ""
        kind = "approval" if verdict.accepted else "approval_refused"
        self._note(kind, verdict.reason + comment, actor=decision.approver)
        return verdict
