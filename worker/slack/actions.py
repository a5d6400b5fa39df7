"""`POST /slack/actions`: an Approve / Reject button pressed in Slack becomes a decision in the
incident, through the same `decide` update `runbook approve` uses.

Order: configured -> signature and freshness -> form -> payload -> who is it -> answer 200 ->
decide -> update the message. Slack wants its answer within 3 seconds and the workflow may take
longer to decide, so the decision is made after answering and its outcome is posted to the
interaction's `response_url`. Slack's word counts only for who clicked: the identity is the
one `webhook.slack.approvers` maps the Slack user id to, and the workflow still applies the
policy (allow-list, four eyes, N approvals) to it. Nothing here starts a workflow.

Every refusal is answered with its reason, logged, counted, and, when the request names one of
this service's incidents (even a forged request does), recorded in that incident's timeline
with the `refused` signal so the people handling it see the attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.decisions import Decision
from contracts.incident import IncidentStatus
from contracts.steps import StepName
from worker.approvals.attest import attested
from worker.intake.incidents import TemporalGateway, TemporalUnavailable
from worker.intake.metrics import WebhookMetrics
from worker.settings.runbook import Settings
from worker.slack.payload import Click, Ignored, MalformedPayload, parse, peek
from worker.slack.refusals import RefusalRecorder
from worker.slack.reply import post, private_note, replacement
from worker.slack.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureRefused, verify

log = logging.getLogger("runbook.webhook.slack")

PATH = "/slack/actions"
COMMENT = "via Slack"
FORM_TYPE = "application/x-www-form-urlencoded"
NOT_CONFIGURED = (
    "Slack approvals are not configured on this webhook: set RUNBOOK_SLACK_SIGNING_SECRET "
    "(or RUNBOOK_SLACK_SIGNING_SECRET_FILE) to the Slack app's signing secret"
)
OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["payload"],
                    "properties": {
                        "payload": {
                            "type": "string",
                            "description": "Slack's block_actions interaction payload (JSON)",
                        }
                    },
                }
            }
        },
    },
    "security": [{"slackSignature": []}],
}
SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": SIGNATURE_HEADER,
    "description": f"v0=<hex HMAC-SHA256 of 'v0:<{TIMESTAMP_HEADER}>:<body>'>, 5-minute window",
}

After = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    """What to answer Slack at once, and what to do once it is answered."""

    status: int
    outcome: str
    reason: str
    after: After | None = None


class SlackActions:
    """Owns the signing secret, the user mapping and the refusal recorder of one app."""

    def __init__(
        self,
        settings: Settings,
        gateway: TemporalGateway,
        metrics: WebhookMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        secret = settings.slack_signing_secret
        text = secret.get_secret_value().strip() if secret is not None else ""
        self._secret = text.encode() if text else None
        self._config = settings.webhook.slack
        self._gateway = gateway
        self._metrics = metrics
        self._clock = clock
        self._recorder = RefusalRecorder(gateway)
        self._key = settings.approval_signing_key
        self._ttl = settings.webhook.attestation_ttl

    @property
    def configured(self) -> bool:
        return self._secret is not None

    def problems(self) -> list[str]:
        """Said at start, so a half-configured Slack integration is noticed before a click."""
        if self._secret is None:
            return [] if not self._config.approvers else [NOT_CONFIGURED]
        if not self._config.approvers:
            return ["webhook.slack.approvers is empty: every Slack click will be refused"]
        return []

    def count(self, outcome: str) -> None:
        self._metrics.slack_actions.labels(outcome).inc()

    async def handle(self, headers: Mapping[str, str], body: bytes) -> Answer:
        if self._secret is None:
            self.count("not_configured")
            return Answer(404, "not_configured", NOT_CONFIGURED)
        try:
            verify(self._secret, headers, body, self._clock(), self._config.max_age)
        except SignatureRefused as err:
            claim = peek(body)
            what = f" [{claim.verb} {claim.step}]" if claim.verb and claim.step else ""
            return self._refuse(
                401, err.problem, err.reason, claim.workflow_id, claim.user_id, what
            )
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != FORM_TYPE:
            claim = peek(body)
            return self._refuse(
                415, "malformed", f"content type must be {FORM_TYPE}, got {media_type or 'none'!r}",
                claim.workflow_id, claim.user_id,
            )  # fmt: skip
        try:
            parsed = parse(body)
        except MalformedPayload as err:
            claim = peek(body)
            return self._refuse(
                400, "malformed", f"malformed request: {err}", claim.workflow_id, claim.user_id
            )
        if isinstance(parsed, Ignored):
            log.info("slack interaction ignored: %s", parsed.reason)
            self.count("ignored")
            return Answer(200, "ignored", parsed.reason)
        identity = self._config.approvers.get(parsed.user_id)
        if identity is None:
            reason = f"Slack user {parsed.user_id} is not mapped to an approver"
            note = private_note(
                f"{reason}: nothing was decided. Ask the platform team to add your member id "
                f"to webhook.slack.approvers, or use `runbook {parsed.verb} "
                f"{parsed.workflow_id} {parsed.step.value} --as YOUR-NAME`."
            )
            return self._refuse(
                403, "unmapped", reason, parsed.workflow_id, parsed.user_id,
                tell=(parsed.response_url, note),
            )  # fmt: skip
        log.info(
            "slack: %s (%s) %ss %s on %s", identity, parsed.user_id, parsed.verb,
            parsed.step.value, parsed.workflow_id,
        )  # fmt: skip
        # A partial, not a lambda: Starlette awaits a background task only if it can see
        # that it is async, and runs anything else in a thread (where a coroutine is lost).
        return Answer(200, "accepted", "deciding", partial(self.decide, parsed, identity))

    def _refuse(
        self,
        status: int,
        outcome: str,
        reason: str,
        workflow_id: str | None,
        user_id: str | None,
        detail: str = "",
        tell: tuple[str | None, dict[str, Any]] | None = None,
    ) -> Answer:
        """Answer at once; after answering, write the refusal into the incident it names (so a
        flood of forged requests is answered as fast as it arrives) and, for a genuine Slack
        request only, `tell` the person who clicked through its response_url."""
        self.count(outcome)
        log.warning(
            "slack action refused (%s): %s%s; incident %s, Slack user %s",
            outcome, reason, detail, workflow_id or "none named", user_id or "unknown",
        )  # fmt: skip
        if workflow_id is None and tell is None:
            return Answer(status, outcome, reason)

        async def after() -> None:
            if workflow_id is not None:
                await self._recorder.record(workflow_id, user_id, reason + detail)
            if tell is not None:
                await self._post(*tell)

        return Answer(status, outcome, reason, after)

    def _decision(self, click: Click, identity: str) -> Decision:
        """Signed (proof `slack`) when this webhook holds the approval signing key: the
        request was Slack's and the member is mapped to `identity`. The button names the
        incident and the plan it was sent for, so a click on an earlier incident's message
        is refused by the workflow. Without the key, the mapped name as typed."""
        if self._key is None or not click.incident_run:
            return Decision(
                step=click.step, approver=identity, comment=COMMENT, decision=click.verb,
                incident_run=click.incident_run or None, plan_digest=click.plan_digest or None,
            )  # fmt: skip
        return attested(
            key=self._key, ttl=self._ttl, workflow_id=click.workflow_id,
            incident_run=click.incident_run, plan_digest=click.plan_digest, step=click.step,
            verb=click.verb, approver=identity, proof="slack", comment=COMMENT,
        )  # fmt: skip

    async def decide(self, click: Click, identity: str) -> None:
        """Put the decision to the incident and show the outcome in Slack."""
        decision = self._decision(click, identity)
        who = f"{identity} (<@{click.user_id}>)"
        step = click.step.value
        timeout = self._config.decide_timeout
        handle: WorkflowHandle[Any, Any] | None = None
        accepted = False
        try:
            client = await self._gateway.client()
            handle = client.get_workflow_handle(click.workflow_id)
            verdict = await asyncio.wait_for(
                handle.execute_update("decide", decision, result_type=str, rpc_timeout=timeout),
                timeout.total_seconds() + 1,
            )
            accepted = True
            outcome = "approved" if click.verb == "approve" else "rejected"
            mark = ":white_check_mark:" if outcome == "approved" else ":no_entry:"
            text = f"{mark} {step} {outcome} by {who} via Slack"
            if outcome == "approved":  # the incident's count: "(1/1)", "1/2: waiting for more"
                text += f". Incident: {verdict}"
        except WorkflowUpdateFailedError as err:
            why = getattr(err.cause, "message", None) or str(err.cause or err)
            outcome, text = "refused_by_workflow", f":x: {who} could not {click.verb} {step}: {why}"
        except RPCError as err:
            why = (
                "no open incident with that id (it may have ended)"
                if err.status is RPCStatusCode.NOT_FOUND
                else f"Temporal refused it: {err.message}"
            )
            outcome, text = "unavailable", self._not_reached(click, identity, why)
        except (TemporalUnavailable, TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            why = str(err) or f"no answer within {timeout}"
            outcome, text = "unavailable", self._not_reached(click, identity, why)
        self.count(outcome)
        log.info("slack decision on %s: %s", click.workflow_id, text)
        pending = await self._still_pending(handle, click.step, default=not accepted)
        await self._post(click.response_url, replacement(click.blocks, click.step, text, pending))

    @staticmethod
    def _not_reached(click: Click, identity: str, why: str) -> str:
        return (
            f":warning: {identity}'s {click.verb} of {click.step.value} did not reach the "
            f"incident: {why}. Try again, or `runbook {click.verb} {click.workflow_id} "
            f"{click.step.value} --as {identity}`"
        )

    async def _still_pending(
        self, handle: WorkflowHandle[Any, Any] | None, step: StepName, default: bool
    ) -> bool:
        """Whether the step's buttons should stay: it still waits for a decision."""
        if handle is None:
            return default
        timeout = self._gateway.timeout
        try:
            status = await asyncio.wait_for(
                handle.query("status", result_type=IncidentStatus, rpc_timeout=timeout),
                timeout.total_seconds() + 1,
            )
        except (
            RPCError,
            TimeoutError,
            WorkflowQueryFailedError,
            WorkflowQueryRejectedError,
        ) as err:
            log.info("status of %s unknown after the decision: %s", handle.id, err)
            return default
        return any(p.step is step for p in status.pending_approvals)

    async def _post(self, url: str | None, body: dict[str, Any]) -> None:
        await post(url, body, self._config.response_url_prefixes, self._gateway.timeout)
