"""A front door's word on a decision: who decided, how that was proven, for which incident,
step and plan, until when.

Temporal records no verified sender on a signal or an update, so anyone who can reach the task
queue can type any approver's name. The front doors that do prove a person (Slack's signed
requests, an ID token from the team's identity provider) sign what they verified with a key the
worker also holds (HS256, a JWS made and checked by PyJWT); the workflow counts a decision as
verified only when this activity, reading that key, finds the signature good.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import jwt
from pydantic import BaseModel, Field, SecretStr, ValidationError
from temporalio import activity

from contracts.steps import StepName

Proof = Literal["slack", "oidc"]
ALGORITHM = "HS256"


class DecisionClaim(BaseModel):
    """What a front door verified, bound to one incident (its first run) and one plan."""

    workflow_id: str
    incident_run: str = Field(description="the incident's first run id: never another's")
    step: StepName
    plan_digest: str
    decision: Literal["approve", "reject"]
    approver: str
    proof: Proof
    expires_at: datetime


class AttestationCheck(BaseModel):
    valid: bool
    reason: str = ""
    claim: DecisionClaim | None = None


def sign(claim: DecisionClaim, key: SecretStr) -> str:
    payload = claim.model_dump(mode="json") | {"exp": int(claim.expires_at.timestamp())}
    return jwt.encode(payload, key.get_secret_value(), algorithm=ALGORITHM)


def check(attestation: str, key: SecretStr | None) -> AttestationCheck:
    """Signature, algorithm and expiry; a bad one says why and decides nothing."""
    if key is None:
        return AttestationCheck(
            valid=False,
            reason="this worker holds no approval signing key (RUNBOOK_APPROVAL_SIGNING_KEY): "
            "it cannot count a verified decision",
        )
    try:
        payload = jwt.decode(
            attestation,
            key.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["exp"]},
        )
        claim = DecisionClaim.model_validate(payload)
    except jwt.ExpiredSignatureError:
        return AttestationCheck(valid=False, reason="the attestation has expired")
    except (jwt.InvalidTokenError, ValidationError) as err:
        return AttestationCheck(valid=False, reason=f"the attestation is not valid: {err}")
    return AttestationCheck(valid=True, claim=claim)


class AttestationActivities:
    def __init__(self, key: SecretStr | None) -> None:
        self._key = key

    @activity.defn(name="verify_decision")
    async def verify_decision(self, attestation: str) -> AttestationCheck:
        """A local activity: the key stays in the worker, only the verdict enters history."""
        return check(attestation, self._key)
