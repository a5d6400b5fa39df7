"""What a front door sends once it has proven who decides: the decision, with its signed word
(identity, proof, incident, step, plan, expiry) for the worker to check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import SecretStr

from activities.attestation import DecisionClaim, Proof, sign
from contracts.decisions import Decision
from contracts.steps import StepName


def attested(
    *,
    key: SecretStr,
    ttl: timedelta,
    workflow_id: str,
    incident_run: str,
    plan_digest: str,
    step: StepName,
    verb: Literal["approve", "reject"],
    approver: str,
    proof: Proof,
    comment: str = "",
) -> Decision:
    claim = DecisionClaim(
        workflow_id=workflow_id,
        incident_run=incident_run,
        step=step,
        plan_digest=plan_digest,
        decision=verb,
        approver=approver,
        proof=proof,
        expires_at=datetime.now(UTC) + ttl,
    )
    return Decision(
        step=step,
        approver=approver,
        comment=comment,
        decision=verb,
        proof=proof,
        attestation=sign(claim, key),
        incident_run=incident_run,
        plan_digest=plan_digest,
    )
