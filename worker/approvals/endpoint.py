"""`POST /approvals`: a decision from someone who is not in Slack, proven by an ID token
(`Authorization: Bearer <token>`). The token names the approver; the endpoint signs what it
verified and puts the decision to the incident through the `decide` update, whose verdict it
answers with. Nothing is decided on a bad token."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.incident import IncidentStatus
from contracts.steps import StepName
from worker.approvals.attest import attested
from worker.approvals.oidc import TokenRefused, TokenVerifier
from worker.intake.incidents import TemporalGateway, TemporalUnavailable
from worker.settings.runbook import Settings

log = logging.getLogger("runbook.approvals")
APPROVALS_PATH = "/approvals"


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(min_length=1, max_length=1000)
    step: StepName
    decision: Literal["approve", "reject"] = "approve"
    comment: str = Field(default="", max_length=2000)
    plan_digest: str | None = Field(
        default=None, description="the plan you looked at (`runbook status`); refused if changed"
    )


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class ApprovalsEndpoint:
    def __init__(self, settings: Settings, gateway: TemporalGateway) -> None:
        oidc = settings.webhook.oidc
        self._verifier = TokenVerifier(oidc) if oidc else None
        self._key = settings.approval_signing_key
        self._ttl = settings.webhook.attestation_ttl
        self._gateway = gateway

    def problems(self) -> list[str]:
        if self._verifier is not None and self._key is None:
            return ["webhook.oidc is set but RUNBOOK_APPROVAL_SIGNING_KEY is not: POST "
                    "/approvals answers 503"]  # fmt: skip
        return []

    async def handle(self, authorization: str | None, request: ApprovalRequest) -> Answer:
        if self._verifier is None or self._key is None:
            why = "this webhook holds no approval signing key (RUNBOOK_APPROVAL_SIGNING_KEY)"
            return Answer(503, {"reason": why + ": it cannot vouch for any decision"})
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Answer(401, {"reason": "send the ID token as `Authorization: Bearer <token>`"})
        try:
            approver = await self._verifier.approver(token.strip())
        except TokenRefused as err:
            log.info("approval refused at the door: %s", err)
            return Answer(401, {"reason": str(err)})
        return await self._decide(request, approver)

    async def _decide(self, request: ApprovalRequest, approver: str) -> Answer:
        assert self._key is not None
        try:
            client = await self._gateway.client()
            handle = client.get_workflow_handle(request.workflow_id)
            status = await handle.query("status", result_type=IncidentStatus)
            if request.plan_digest and request.plan_digest != status.plan_digest:
                why = f"the plan has changed since you looked ({status.plan_digest} now)"
                return Answer(409, {"reason": why + ": look again and decide again"})
            decision = attested(
                key=self._key, ttl=self._ttl, workflow_id=request.workflow_id,
                incident_run=status.incident_run, plan_digest=status.plan_digest,
                step=request.step, verb=request.decision, approver=approver, proof="oidc",
                comment=request.comment,
            )  # fmt: skip
            verdict = await handle.execute_update("decide", decision, result_type=str)
        except WorkflowUpdateFailedError as err:
            why = getattr(err.cause, "message", None) or str(err.cause or err)
            return Answer(409, {"reason": why, "approver": approver})
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return Answer(404, {"reason": f"no open incident {request.workflow_id}"})
            return Answer(503, {"reason": f"Temporal refused it: {err.message}"})
        except TemporalUnavailable as err:
            return Answer(503, {"reason": str(err)})
        return Answer(200, {"verdict": verdict, "approver": approver, "proof": "oidc"})
