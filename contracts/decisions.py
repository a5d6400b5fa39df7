"""What people send an incident: decisions on steps, aborts, refusals; and what is recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts.base import Contract
from contracts.steps import StepName

# How a decision's author was proven: Slack's signed request, an ID token from the team's
# identity provider, or nothing (a raw signal or update: the name as typed).
Proof = Literal["slack", "oidc", "unverified"]


class Decision(Contract):
    """The payload of `approve` / `reject`, and of `decide` with its `decision`."""

    step: StepName
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)
    decision: Literal["approve", "reject"] = "approve"
    proof: Proof = Field(
        default="unverified",
        description="how the approver was proven; anything but unverified needs `attestation`",
    )
    attestation: str | None = Field(
        default=None, max_length=4000, description="a front door's signed word (a JWS)"
    )
    incident_run: str | None = Field(
        default=None, description="the incident (its first run id) this decision is for"
    )
    plan_digest: str | None = Field(
        default=None, max_length=64, description="the plan it was made on (`status`)"
    )


class Abort(Contract):
    """The payload of `abort`: stop after the current step, skip the rest."""

    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)
    restore_api: bool = Field(
        default=True, description="still undo fallback (cache back on, replicas back)"
    )


class Refusal(Contract):
    """The payload of `refused`: an approval attempt the front door turned away (a forged or
    stale chat action, an unmapped user). Recorded in the timeline, never acted upon."""

    source: str = Field(min_length=1, max_length=100)
    actor: str = Field(default="unknown", max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class Approval(BaseModel):
    """A decision the workflow accepted (refused ones are only in the timeline)."""

    step: StepName
    approver: str
    comment: str = ""
    approved: bool
    at: datetime
    proof: Proof = "unverified"
    expired: bool = Field(
        default=False, description="a pre-approval past approvals.preapproval_expiry: not counted"
    )


class PendingApproval(BaseModel):
    step: StepName
    reason: str
    action: str = ""
    since: datetime
    approvals_needed: int
    approved_by: list[str] = Field(default_factory=list)
    verified_only: bool = Field(
        default=False, description="only a proven person (Slack, an ID token) approves it"
    )
