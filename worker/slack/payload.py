"""Slack's interaction payload, read two ways.

`parse` is for requests whose signature holds: strict, every problem is a 400 with a reason.
`peek` is for refused ones (forged, stale): it never raises and takes only what is needed to
record the refusal in the incident it names (which incident, which Slack user claims to act),
so an attack on an incident shows in that incident's timeline. Neither trusts a workflow id
that is not one of the project's incidents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.notifications.models import ButtonValue
from contracts.steps import StepName
from contracts.target import RedisTarget


def _incident_prefix() -> str:
    """Derived from the one place incident ids are built, so the two cannot drift apart."""
    sample = RedisTarget(redis_url="redis://localhost:6379/0", namespace="ns", statefulset="sts")
    return sample.workflow_id.removesuffix("ns/sts")


INCIDENT_PREFIX = _incident_prefix()
DECISIONS = ("approve", "reject")
Verb = Literal["approve", "reject"]


class MalformedPayload(Exception):
    """A signed request that is not a usable Slack action: the message says what is wrong."""


class SlackUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    username: str | None = Field(default=None, max_length=200)


class SlackAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action_id: str = Field(max_length=255)
    value: str | None = Field(default=None, max_length=2000)


class SlackMessage(BaseModel):
    """The message the button sits in; its blocks are rebuilt to show the outcome."""

    model_config = ConfigDict(extra="ignore")

    blocks: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class InteractionPayload(BaseModel):
    """The fields of a block_actions interaction this service reads; Slack sends many more."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(max_length=100)
    user: SlackUser
    actions: list[SlackAction] = Field(default_factory=list, max_length=25)
    response_url: str | None = Field(default=None, max_length=2000)
    message: SlackMessage | None = None


@dataclass(frozen=True)
class Click:
    """One Approve or Reject button pressed by one Slack user."""

    verb: Verb
    workflow_id: str
    step: StepName
    user_id: str
    response_url: str | None
    blocks: list[dict[str, Any]]
    incident_run: str = ""  # empty from a message sent before buttons named their incident
    plan_digest: str = ""


@dataclass(frozen=True)
class Ignored:
    """A signed interaction that is not a decision (another kind, another button)."""

    reason: str


@dataclass(frozen=True)
class Claim:
    """What a refused request says about itself; any part may be missing."""

    workflow_id: str | None = None
    user_id: str | None = None
    verb: str | None = None
    step: str | None = None


def _payload_text(body: bytes) -> str:
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=20, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as err:
        raise MalformedPayload(f"not a form-encoded Slack request: {err}") from None
    values = form.get("payload", [])
    if len(values) != 1:
        raise MalformedPayload("expected exactly one `payload` form field")
    return values[0]


def _button(value: str | None) -> ButtonValue:
    if not value:
        raise MalformedPayload("the button carries no value")
    try:
        button = ButtonValue.model_validate_json(value)
    except ValidationError as err:
        problem = err.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in problem["loc"]) or "value"
        raise MalformedPayload(
            f"the button value is not this service's: {where}: {problem['msg']}"
        ) from None
    if not button.workflow_id.startswith(INCIDENT_PREFIX):
        raise MalformedPayload(
            f"{button.workflow_id!r} is not an incident of this service "
            f"(ids start with {INCIDENT_PREFIX!r})"
        )
    return button


def parse(body: bytes) -> Click | Ignored:
    """A signed request -> the decision it carries; MalformedPayload when it is not one."""
    text = _payload_text(body)
    try:
        payload = InteractionPayload.model_validate_json(text)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
            for e in err.errors(include_url=False, include_input=False)[:3]
        )
        raise MalformedPayload(f"not a Slack interaction payload: {problems}") from None
    if payload.type != "block_actions":
        return Ignored(f"{payload.type} interactions are not handled here")
    ours = [a for a in payload.actions if a.action_id in DECISIONS]
    if not ours:
        return Ignored("no approve or reject action in it")
    if len(ours) > 1:
        raise MalformedPayload("more than one decision in one interaction")
    action = ours[0]
    button = _button(action.value)
    return Click(
        verb="approve" if action.action_id == "approve" else "reject",
        workflow_id=button.workflow_id,
        step=button.step,
        user_id=payload.user.id,
        response_url=payload.response_url,
        blocks=payload.message.blocks if payload.message else [],
        incident_run=button.incident_run,
        plan_digest=button.plan_digest,
    )


def peek(body: bytes) -> Claim:
    """Best effort, never raises: the incident and user a (refused) request claims."""
    try:
        data = json.loads(_payload_text(body))
    except (MalformedPayload, ValueError, RecursionError):
        return Claim()
    if not isinstance(data, dict):
        return Claim()
    user = data.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    claim = Claim(user_id=str(user_id)[:64] if isinstance(user_id, str | int) else None)
    actions = data.get("actions")
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, dict) or not isinstance(action.get("value"), str):
            continue
        try:
            value = json.loads(action["value"])
        except (ValueError, RecursionError):
            continue
        workflow_id = value.get("workflow_id") if isinstance(value, dict) else None
        if (
            isinstance(workflow_id, str)
            and workflow_id.startswith(INCIDENT_PREFIX)
            and len(workflow_id) <= 1000
        ):
            step = value.get("step")
            verb = action.get("action_id")
            return Claim(
                workflow_id=workflow_id,
                user_id=claim.user_id,
                verb=verb[:20] if isinstance(verb, str) else None,
                step=step[:50] if isinstance(step, str) else None,
            )
    return claim
