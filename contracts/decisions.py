"""What people send an incident: decisions on steps, aborts, refusals; and what is recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts.base import Contract
from contracts.steps import StepName


class Decision(Contract):
    """The payload of `approve` / `reject`, and of `decide` with its `decision`."""

    step: StepName
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)
    decision: Literal["approve", "reject"] = "approve"


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


class PendingApproval(BaseModel):
    step: StepName
    reason: str
    action: str = ""
    since: datetime
    approvals_needed: int
    approved_by: list[str] = Field(default_factory=list)
