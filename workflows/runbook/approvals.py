"""The approval book: who may decide which step, and what has been decided.

Pure and deterministic, so the workflow can replay it, and so every rule (allow-list, four
eyes, N approvals, one decision per step, pre-approval) is tested without a server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from activities.policy import ApprovalPolicy
from contracts.decisions import Approval, Decision
from contracts.steps import Step, StepName

State = Literal["waiting", "approved", "rejected", "expired", "withdrawn"]


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str


@dataclass
class ApprovalBook:
    policy: ApprovalPolicy
    requested_by: str
    needed: dict[StepName, int] = field(default_factory=dict)
    approvals: list[Approval] = field(default_factory=list)
    closed: dict[StepName, State] = field(default_factory=dict)

    @classmethod
    def for_plan(
        cls,
        policy: ApprovalPolicy,
        requested_by: str,
        plan: list[Step],
        approvals: list[Approval] | None = None,
        closed: dict[StepName, State] | None = None,
    ) -> ApprovalBook:
        """A book for `plan`; given the incident's own `approvals` and `closed`, it records
        into them (they are the incident's memory, carried across runs)."""
        needed = {s.name: s.approvals_needed for s in plan if s.requires_approval}
        book = cls(policy=policy, requested_by=requested_by, needed=needed)
        book.approvals = approvals if approvals is not None else book.approvals
        book.closed = closed if closed is not None else book.closed
        return book

    def need(self, step: StepName) -> int:
        """Approvals `step` needs. Fails closed: a step this book was never told about needs
        the most approvals any step of the policy or the plan needs, never none."""
        if step in self.needed:
            return self.needed[step]
        return max(1, *self.policy.approvals_needed.values(), *self.needed.values())

    def require(self, step: StepName, approvals: int) -> None:
        """A step the plan gained later (a flap's new round) asks for approval here."""
        self.needed[step] = max(self.needed.get(step, 0), approvals, 1)

    def state(self, step: StepName) -> State:
        if step in self.closed:
            return self.closed[step]
        if len(self.approvers_of(step)) >= self.need(step):
            return "approved"
        return "waiting"

    def approvers_of(self, step: StepName) -> list[str]:
        return [
            a.approver for a in self.approvals if a.step is step and a.approved and not a.expired
        ]

    def expire_preapprovals(self, step: StepName, given_before: datetime) -> list[Approval]:
        """Approvals of `step` given before `given_before` stop counting (an approval must be
        about today's evidence); a step they alone approved waits again. Rejections stand."""
        stale = [
            a
            for a in self.approvals
            if a.step is step and a.approved and not a.expired and a.at < given_before
        ]
        for approval in stale:
            approval.expired = True
        reopened = len(self.approvers_of(step)) < self.need(step)
        if stale and self.closed.get(step) == "approved" and reopened:
            del self.closed[step]
        return stale

    def submit(self, decision: Decision, at: datetime) -> Verdict:
        """Check a decision against the policy; record it only when every rule holds."""
        refusal = self._refusal(decision)
        if refusal:
            return Verdict(False, refusal)
        approved = decision.decision == "approve"
        self.approvals.append(
            Approval(
                step=decision.step,
                approver=decision.approver,
                comment=decision.comment,
                approved=approved,
                at=at,
                proof=decision.proof,
            )
        )
        if not approved:
            self.closed[decision.step] = "rejected"
            return Verdict(True, f"{decision.step.value} rejected by {decision.approver}")
        have, need = len(self.approvers_of(decision.step)), self.need(decision.step)
        if have >= need:
            self.closed[decision.step] = "approved"
            return Verdict(True, f"{decision.step.value} approved ({have}/{need})")
        return Verdict(True, f"{decision.step.value} approval {have}/{need}: waiting for more")

    def expire(self, step: StepName) -> None:
        if step not in self.closed:
            self.closed[step] = "expired"

    def withdraw(self, step: StepName) -> None:
        """The request is moot (alerts resolved, incident aborted): later decisions are refused."""
        if step not in self.closed:
            self.closed[step] = "withdrawn"

    def _refusal(self, d: Decision) -> str | None:
        if d.step in self.policy.verified_only and d.proof == "unverified":
            return (
                f"{d.step.value} takes only a verified approval, and this one names "
                f"{d.approver} as typed: approve with `runbook approve` and an ID token "
                "(approvals endpoint), or the Slack button"
            )
        allowed = self.policy.approvers
        if "*" not in allowed and d.approver not in allowed:
            return f"{d.approver} is not an approver (allowed: {', '.join(allowed)})"
        if d.step not in self.needed:
            return f"{d.step.value} needs no approval in this incident's plan"
        if d.step in self.closed:
            return f"{d.step.value} is already decided: {self.closed[d.step]}"
        if self.policy.four_eyes and d.approver == self.requested_by and d.decision == "approve":
            return f"four eyes: {d.approver} requested this incident and cannot approve it"
        if d.decision == "approve" and d.approver in self.approvers_of(d.step):
            return f"{d.approver} already approved {d.step.value}: a different person must"
        return None


def plan_digest(plan: list[Step]) -> str:
    """The plan as a person was shown it (steps, titles, parameters; not their progress): a
    decision names it, and one made on a plan that has since changed is refused."""
    shape = [(s.name.value, s.title, sorted(s.params.items())) for s in plan]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]
