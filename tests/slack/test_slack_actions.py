"""Approve / Reject from Slack, against the real service: uvicorn on a loopback port, the
Temporal dev server, a real worker and a real out-of-memory Redis whose flush waits for
approval. The Slack message the worker posts (to a real HTTP receiver standing in for Slack)
carries the buttons; the click is the request Slack would send, signed with the app's signing
secret; the outcome goes to a second receiver standing in for the response_url."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.notifications.channels import MAX_BLOCKS, slack_message
from activities.notifications.models import Notification, NotificationKind
from contracts.incident import IncidentReport, IncidentStatus
from contracts.steps import StepName
from contracts.target import RedisTarget
from sandbox.processes import RedisProcess
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    command_calls,
    full_evicting_redis,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from tests.http_receiver import Receiver, http_receiver
from tests.intake.test_webhook_helpers import TOKEN, address, bearer, namespace, serve
from tests.intake.test_webhook_http import assert_not_started
from worker.settings.loader import load_settings
from worker.settings.runbook import ConfigError, Settings
from worker.settings.webhook import SlackSettings
from worker.slack.payload import INCIDENT_PREFIX
from worker.slack.reply import updated_blocks
from worker.slack.signature import SignatureRefused, sign, verify
from worker.webhook import create_app

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APPROVERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0MALLORY": "mallory"}
FORM = "application/x-www-form-urlencoded"
WAIT = 60.0  # seconds: generous, the machine is shared
ROOT = Path(__file__).resolve().parents[2]


# ---- Slack's side of the wire ------------------------------------------------------------


def form(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, secret: str = SECRET, age: float = 0.0) -> dict[str, str]:
    stamp = str(int(time.time() - age))
    return {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(secret.encode(), stamp, body),
    }


def click(
    user: str,
    action: str,
    value: str,
    response_url: str,
    blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A block_actions payload as Slack sends it (trimmed of fields this service ignores)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "trigger_id": "123.456.abc",
        "channel": {"id": "C0OPS", "name": "ops"},
        "message": {"type": "message", "text": "Approval needed", "blocks": blocks or []},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action,
                "block_id": "approval:flush",
                "value": value,
                "action_ts": "1700000001.000200",
            }
        ],
    }


# ---- the stage: worker, incident, webhook ------------------------------------------------


@dataclass
class Stage:
    settings: Settings
    handle: WorkflowHandle[Any, IncidentReport]
    redis: RedisProcess
    http: httpx.AsyncClient
    channel: Receiver  # where the worker posts its Slack messages
    responses: Receiver  # the response_url
    message: dict[str, Any]  # the approval_request message as the channel got it
    metrics: Any  # the app's Prometheus registry

    def button(self, action: str, step: str = "flush") -> str:
        for block in self.message["blocks"]:
            if block.get("block_id") == f"approval:{step}":
                return str(next(e["value"] for e in block["elements"] if e["action_id"] == action))
        raise AssertionError(f"no buttons for {step} in {self.message['blocks']}")

    def click(self, user: str, action: str = "approve") -> dict[str, Any]:
        return click(user, action, self.button(action), self.responses.url, self.message["blocks"])

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post("/slack/actions", content=body, headers=headers)

    async def status(self) -> IncidentStatus:
        status: IncidentStatus = await self.handle.query("status", result_type=IncidentStatus)
        return status

    async def timeline_until(
        self, check: Callable[[IncidentStatus], bool], what: str
    ) -> IncidentStatus:
        status = await self.status()
        deadline = time.monotonic() + WAIT
        while not check(status):
            if time.monotonic() > deadline:
                raise AssertionError(f"never {what}: {[e.message for e in status.timeline]}")
            await asyncio.sleep(0.1)
            status = await self.status()
        return status

    def metric(self, outcome: str) -> float:
        value = self.metrics.get_sample_value(
            "runbook_webhook_slack_actions_total", {"outcome": outcome}
        )
        return float(value or 0.0)


async def wait_for_body(
    receiver: Receiver, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        found = next((b for b in list(receiver.bodies) if check(b)), None)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never arrived; got {receiver.bodies}")
        await asyncio.sleep(0.05)


def slack_settings(
    env: WorkflowEnvironment, redis_url: str | None = None, **overrides: Any
) -> Settings:
    webhook = overrides.pop("webhook", {})
    slack = {"approvers": APPROVERS, **webhook.pop("slack", {})}
    settings = settings_for(
        redis_url,
        webhook={"slack": slack, **webhook},
        **{"webhook_token": TOKEN, "slack_signing_secret": SECRET, **overrides},
    )
    settings.temporal.address = address(env)
    return settings


@contextmanager
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    with http_receiver() as channel, http_receiver() as responses:
        yield channel, responses


@asynccontextmanager
async def pending_flush(
    env: WorkflowEnvironment, redis_server: RedisFactory, **overrides: Any
) -> AsyncIterator[Stage]:
    """An out-of-memory incident waiting for approval of its flush, its Slack message posted,
    and the webhook serving; the incident is terminated if a test leaves it running."""
    server = full_evicting_redis(redis_server)
    with receivers() as (channel, responses):
        prefix = responses.url.removesuffix("hook")
        settings = slack_settings(
            env,
            server.url,
            notifications={"channels": [{"name": "ops", "kind": "slack", "url": channel.url}]},
            webhook={"slack": {"response_url_prefixes": [prefix]}},
            **overrides,
        )
        app = create_app(settings)
        async with running_worker(env.client, settings):
            handle = await start(env.client, settings, auto(server.url))
            await wait_for_pending(handle, "flush", within=WAIT)
            message = await wait_for_body(
                channel, lambda b: any(x.get("type") == "actions" for x in b["blocks"]),
                "the approval request with buttons",
            )  # fmt: skip
            with serve(app) as url:
                async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                    registry = app.state.webhook.metrics.registry
                    stage = Stage(
                        settings, handle, server, http, channel, responses, message, registry
                    )
                    try:
                        yield stage
                    finally:
                        description = await handle.describe()
                        if description.status is not None and description.status.name == "RUNNING":
                            await handle.terminate("test over")


# ---- end to end --------------------------------------------------------------------------


async def test_a_signed_slack_approval_runs_the_flush_as_the_mapped_approver(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    async with pending_flush(temporal_env, redis_server) as stage:
        body = form(stage.click("U0ALICE"))
        began = time.monotonic()
        answer = await stage.post(body, signed(body))
        answered_in = time.monotonic() - began
        report = await asyncio.wait_for(stage.handle.result(), WAIT)
        update = await wait_for_body(
            stage.responses, lambda b: b.get("replace_original") is True, "the message update"
        )
        approved = stage.metric("approved")

    assert answer.status_code == 200, answer.text
    assert answered_in < 3.0, "Slack gives up after 3 seconds"
    flush = next(s for s in report.steps if s.name is StepName.FLUSH)
    assert flush.status == "succeeded", flush
    assert command_calls(stage.redis.client(), "flushdb") == 1
    [approval] = report.approvals
    assert (approval.approver, approval.comment, approval.approved) == ("alice", "via Slack", True)
    entry = next(e for e in report.timeline if e.kind == "approval")
    assert entry.actor == "alice" and "via Slack" in entry.message
    assert "flush approved by alice" in update["text"], update
    assert update["text"].endswith("via Slack. Incident: flush approved (1/1)")
    by_id = {b.get("block_id"): b for b in update["blocks"]}
    assert "approval:flush" not in by_id, "a decided step keeps no buttons"
    assert "flush approved by alice" in by_id["outcome:flush"]["text"]["text"]
    assert update["blocks"][0] == stage.message["blocks"][0], "the message itself stays"
    assert approved == 1.0


async def test_forged_stale_and_unmapped_clicks_are_refused_and_shown_in_the_timeline(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with pending_flush(
        temporal_env, redis_server, approvals={"approvers": ["alice", "bob"]}
    ) as stage:
        genuine = form(stage.click("U0ALICE"))
        forged = await stage.post(genuine, signed(genuine, secret="not-the-secret"))
        tampered = form(stage.click("U0BOB"))
        swapped = await stage.post(tampered, signed(genuine))  # alice's signature, bob's body
        stale = await stage.post(genuine, signed(genuine, age=9 * 60))
        future = await stage.post(genuine, signed(genuine, age=-9 * 60))
        stranger = form(stage.click("U999"))
        unmapped = await stage.post(stranger, signed(stranger))
        unsigned = await stage.post(genuine, {"Content-Type": FORM})
        # Mapped and signed, but the policy's allow-list says no: the workflow refuses it.
        denied = form(stage.click("U0MALLORY"))
        policy = await stage.post(denied, signed(denied))

        def refused(status: IncidentStatus) -> list[str]:
            return [e.message for e in status.timeline if e.kind == "approval_refused"]

        status = await stage.timeline_until(lambda s: len(refused(s)) >= 7, "recorded 7 refusals")
        note = await wait_for_body(
            stage.responses, lambda b: b.get("response_type") == "ephemeral", "the private note"
        )
        outcome = await wait_for_body(
            stage.responses, lambda b: b.get("replace_original") is True, "the policy's verdict"
        )
        counts = {o: stage.metric(o) for o in ("forged", "stale", "unmapped")}
        refused_by_workflow = stage.metric("refused_by_workflow")
        flushes = command_calls(stage.redis.client(), "flushdb")

    for answer in (forged, swapped, stale, future, unsigned):
        assert answer.status_code == 401, answer.text
    assert forged.json()["reason"] == "forged signature"
    assert stale.json()["reason"] == "stale request (timestamp 9 min old)"
    assert future.json()["reason"] == "stale request (timestamp 9 min in the future)"
    assert unmapped.status_code == 403
    assert unmapped.json()["reason"] == "Slack user U999 is not mapped to an approver"
    assert policy.status_code == 200, "Slack's part was fine; the workflow decides"
    messages = refused(status)
    assert messages.count("slack: forged signature [approve flush]") == 2  # forged, swapped
    assert "slack: forged signature (no X-Slack-Signature header) [approve flush]" in messages
    assert "slack: stale request (timestamp 9 min old) [approve flush]" in messages
    assert "slack: stale request (timestamp 9 min in the future) [approve flush]" in messages
    assert "slack: Slack user U999 is not mapped to an approver" in messages
    assert any("mallory is not an approver" in m for m in messages)
    actors = {e.actor for e in status.timeline if e.kind == "approval_refused"}
    assert {"U0ALICE", "U0BOB", "U999", "mallory"} <= actors
    assert [p.step for p in status.pending_approvals] == [StepName.FLUSH], "still waiting"
    assert not any(e.kind == "approval" for e in status.timeline)
    assert flushes == 0
    assert "not mapped" in note["text"] and note["replace_original"] is False
    assert (
        "mallory (<@U0MALLORY>) could not approve flush: mallory is not an approver"
        in (outcome["text"])
    )
    kept = [b.get("block_id") for b in outcome["blocks"]]
    assert kept.index("approval:flush") + 1 == kept.index("outcome:flush"), "buttons stay"
    assert counts == {"forged": 3.0, "stale": 2.0, "unmapped": 1.0}
    assert refused_by_workflow == 1.0
    assert "slack action refused (forged)" in caplog.text
    for leaked in (SECRET, "v0=", stage.responses.url):
        assert leaked not in caplog.text, "no secret, signature or response_url in the logs"


async def test_a_signed_slack_reject_skips_the_flush(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    async with pending_flush(temporal_env, redis_server) as stage:
        body = form(stage.click("U0BOB", "reject"))
        answer = await stage.post(body, signed(body))
        report = await asyncio.wait_for(stage.handle.result(), WAIT)
        update = await wait_for_body(
            stage.responses, lambda b: b.get("replace_original") is True, "the message update"
        )

    assert answer.status_code == 200, answer.text
    flush = next(s for s in report.steps if s.name is StepName.FLUSH)
    assert flush.status == "skipped" and "rejected" in (flush.detail or "")
    [rejection] = report.approvals
    assert (rejection.approver, rejection.approved) == ("bob", False)
    assert report.outcome == "escalated"
    assert command_calls(stage.redis.client(), "flushdb") == 0
    assert "flush rejected by bob" in update["text"]
    assert "approval:flush" not in {b.get("block_id") for b in update["blocks"]}


async def test_no_workflow_is_ever_started_and_bad_requests_are_4xx(
    temporal_env: WorkflowEnvironment,
) -> None:
    ns = namespace()
    missing = RedisTarget(redis_url="redis://127.0.0.1:1/0", namespace=ns).workflow_id
    value = json.dumps({"workflow_id": missing, "step": "flush"})
    foreign = json.dumps({"workflow_id": "someone-elses-workflow", "step": "flush"})
    with http_receiver() as responses:
        settings = slack_settings(
            temporal_env,
            webhook={"slack": {"response_url_prefixes": [responses.url.removesuffix("hook")]}},
        )
        with serve(create_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:

                async def send(body: bytes, **headers: str) -> httpx.Response:
                    return await http.post(
                        "/slack/actions", content=body, headers={**signed(body), **headers}
                    )

                nobody = form(click("U0ALICE", "approve", value, responses.url))
                absent = await send(nobody)
                other = await send(form(click("U0ALICE", "approve", foreign, responses.url)))
                junk = await send(b"payload=%7Bnot+json")
                no_form = await send(b"\xff\xfe")
                as_json = await send(nobody, **{"Content-Type": "application/json"})
                modal = await send(form({"type": "view_submission", "user": {"id": "U0ALICE"}}))
                update = await wait_for_body(
                    responses, lambda b: "replace_original" in b, "the 'no incident' update"
                )

    assert absent.status_code == 200, absent.text
    assert "no open incident" in update["text"]
    assert other.status_code == 400 and "not an incident of this service" in other.text
    assert junk.status_code == 400 and "malformed request" in junk.json()["reason"]
    assert no_form.status_code == 400
    assert as_json.status_code == 415
    assert modal.status_code == 200
    await assert_not_started(temporal_env.client, missing)


async def test_without_a_signing_secret_the_endpoint_says_so(
    temporal_env: WorkflowEnvironment,
) -> None:
    settings = slack_settings(temporal_env, slack_signing_secret=None)
    body = form(click("U0ALICE", "approve", "{}", "https://hooks.slack.com/x"))
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
            answer = await http.post("/slack/actions", content=body, headers=signed(body))
            alerts_still_work = await http.get("/readyz", headers=bearer())

    assert answer.status_code == 404
    assert "RUNBOOK_SLACK_SIGNING_SECRET" in answer.json()["reason"]
    assert alerts_still_work.status_code == 200


def test_signed_garbage_is_never_a_server_error(temporal_env: WorkflowEnvironment) -> None:
    """Whatever a (correctly signed) payload holds, the answer is a 2xx or a 4xx."""
    config = slack_settings(temporal_env)
    button = st.fixed_dictionaries(
        {"workflow_id": st.text(max_size=40).map(lambda s: INCIDENT_PREFIX + s),
         "step": st.sampled_from(["flush", "nope", ""])}
    ).map(json.dumps)  # fmt: skip
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    anything = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
            st.text(max_size=8), inner, max_size=3), max_leaves=10
    )  # fmt: skip
    payloads = st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["block_actions", "shortcut"]) | anything,
            "user": st.fixed_dictionaries({"id": st.sampled_from(["U0ALICE", "U999"])}) | anything,
            "actions": st.lists(
                st.fixed_dictionaries(
                    {"action_id": st.sampled_from(["approve", "reject", "other"])},
                    optional={"value": button | anything},
                ),
                max_size=2,
            ) | anything,
            "response_url": st.just("http://127.0.0.1:1/nowhere") | anything,
            "message": anything,
        },
    )  # fmt: skip
    clicks = st.builds(
        click,
        user=st.sampled_from(["U0ALICE", "U999"]),
        action=st.sampled_from(["approve", "reject", "other"]),
        value=button | st.text(max_size=30),
        response_url=st.just("http://127.0.0.1:1/nowhere"),
    )
    bodies = clicks.map(form) | payloads.map(form) | st.binary(max_size=200)
    seen: set[int] = set()
    with serve(create_app(config)) as url, httpx.Client(base_url=url, timeout=WAIT) as http:

        @settings_for_fuzz
        @given(body=bodies)
        def call(body: bytes) -> None:
            answer = http.post("/slack/actions", content=body, headers=signed(body))
            assert answer.status_code < 500, (answer.status_code, answer.text, body)
            seen.add(answer.status_code)

        call()
    assert {200, 400} <= seen, seen


settings_for_fuzz = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


# ---- pure parts ----------------------------------------------------------------------------


def notification(
    kind: NotificationKind, workflow_id: str = "redis-cache-failure/ns/redis/x"
) -> Notification:
    at = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    return Notification(
        workflow_id=workflow_id,
        kind=kind,
        title="Approval needed: flush (FLUSHDB) " + "x" * 300,
        status="Resolving",
        started=at,
        severity="critical",
        impact="i" * 5000,
        current_actions="waiting for approval of flush",
        estimated_resolution="after approval",
        pending_steps=[StepName.FLUSH, StepName.RAISE_MEMORY_LIMIT],
        incident_run="0f6c4f0e-run",
        plan_digest="d1g3st",
    )


def blocks_of(n: Notification) -> list[dict[str, Any]]:
    blocks = slack_message(n)["blocks"]
    assert isinstance(blocks, list)
    return blocks


def test_the_block_kit_message_carries_approve_and_reject_per_pending_step() -> None:
    blocks = blocks_of(notification("approval_request"))
    actions = [b for b in blocks if b["type"] == "actions"]
    assert [b["block_id"] for b in actions] == ["approval:flush", "approval:raise_memory_limit"]
    approve, reject = actions[0]["elements"]
    assert (approve["action_id"], approve["style"]) == ("approve", "primary")
    assert (reject["action_id"], reject["style"]) == ("reject", "danger")
    value = json.loads(approve["value"])
    assert value == {
        "workflow_id": "redis-cache-failure/ns/redis/x",
        "step": "flush",
        "incident_run": "0f6c4f0e-run",  # a click on another incident's message is refused
        "plan_digest": "d1g3st",
    }
    assert approve["value"] == reject["value"] and " " not in approve["value"], "compact JSON"
    assert "confirm" in approve, "a destructive step asks once more before it is approved"
    # Slack's limits: header 150, section text 3000, at most 50 blocks.
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(
        len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b
    )
    assert len(blocks) <= MAX_BLOCKS
    for kind in ("status_update", "escalation"):
        assert any(b["type"] == "actions" for b in blocks_of(notification(kind)))
    assert not any(b["type"] == "actions" for b in blocks_of(notification("final")))
    too_long = notification("approval_request", INCIDENT_PREFIX + "x" * 1990)
    assert not any(b["type"] == "actions" for b in blocks_of(too_long)), "value over 2,000"


def test_the_signature_is_slacks_v0_scheme_with_a_window_both_ways() -> None:
    body = b"payload=%7B%7D"
    now = 1_700_000_000
    window = timedelta(minutes=5)

    def headers(stamp: int, secret: bytes = SECRET.encode(), data: bytes = body) -> dict[str, str]:
        return {
            "x-slack-request-timestamp": str(stamp),
            "x-slack-signature": sign(secret, str(stamp), data),
        }

    # Slack's scheme: v0:<ts>:<body> under HMAC-SHA256, hex, prefixed "v0=".
    assert sign(b"k", "1", b"b") == "v0=" + hmac.new(b"k", b"v0:1:b", "sha256").hexdigest()
    verify(SECRET.encode(), headers(now - 299), body, now, window)
    verify(SECRET.encode(), headers(now + 299), body, now, window)
    cases = {
        "forged signature": headers(now, b"other"),
        "stale request (timestamp 5 min old)": headers(now - 301),
        "stale request (timestamp 10 min in the future)": headers(now + 600),
        "forged signature (no X-Slack-Signature header)": {"x-slack-request-timestamp": str(now)},
        "forged signature (X-Slack-Request-Timestamp is not a time)": {
            **headers(now), "x-slack-request-timestamp": "soon"},
    }  # fmt: skip
    for reason, sent in cases.items():
        with pytest.raises(SignatureRefused) as err:
            verify(SECRET.encode(), sent, body, now, window)
        assert err.value.reason == reason
    with pytest.raises(SignatureRefused, match="forged"):
        verify(SECRET.encode(), headers(now), body + b"&x=1", now, window)


def test_incident_prefix_is_the_one_incident_ids_are_built_with() -> None:
    target = RedisTarget(redis_url="redis://r:6379/0", namespace="a", statefulset="b")
    assert target.workflow_id == INCIDENT_PREFIX + "a/b"


def test_the_signing_secret_comes_from_the_environment_never_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "runbook.yaml"
    config.write_text("webhook:\n  slack:\n    approvers: {U0ALICE: alice}\n")
    secret = tmp_path / "slack-signing-secret"
    secret.write_text(SECRET + "\n")
    monkeypatch.setenv("RUNBOOK_SLACK_SIGNING_SECRET_FILE", str(secret))
    settings = load_settings(config)
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and settings.webhook.slack.approvers == {"U0ALICE": "alice"}
    config.write_text(f"slack_signing_secret: {SECRET}\n")
    with pytest.raises(ConfigError, match="RUNBOOK_SLACK_SIGNING_SECRET"):
        load_settings(config)
    config.write_text("webhook:\n  slack:\n    approvers: {alice: alice}\n")
    with pytest.raises(ConfigError, match="not a Slack user id"):
        load_settings(config)


def test_the_example_config_documents_every_slack_field() -> None:
    example = yaml.safe_load((ROOT / "runbook.example.yaml").read_text())
    assert set(example["webhook"]["slack"]) == set(SlackSettings.model_fields)
    for shipped in (ROOT / "deploy" / "runbook.yaml", ROOT / "deploy/k8s/base/runbook.yaml"):
        assert load_settings(shipped).webhook.slack.approvers == {}, "nobody approves by default"


def test_the_outcome_takes_the_place_of_the_buttons_once_the_step_is_decided() -> None:
    original = blocks_of(notification("approval_request"))
    first = updated_blocks(original, StepName.FLUSH, "flush approval 1/2", still_pending=True)
    ids = [b.get("block_id") for b in first]
    assert ids.index("approval:flush") + 1 == ids.index("outcome:flush"), "buttons stay, note under"
    second = updated_blocks(first, StepName.FLUSH, "flush approved (2/2)", still_pending=False)
    ids = [b.get("block_id") for b in second]
    assert "approval:flush" not in ids and ids.count("outcome:flush") == 1
    assert "approval:raise_memory_limit" in ids, "other steps keep their buttons"
    outcome = next(b for b in second if b.get("block_id") == "outcome:flush")
    assert outcome["text"]["text"] == "flush approved (2/2)"
    assert second[: ids.index("outcome:flush")] == original[: ids.index("outcome:flush")]


async def test_a_click_on_an_earlier_incidents_message_is_refused_and_this_ones_is_verified(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """The workflow id is the same for every incident of a target: yesterday's Approve button
    names yesterday's incident (its first run), so it cannot approve today's flush. Signed by
    the webhook, today's click counts as a verified (`slack`) approval."""
    verified = {"approvers": ["alice", "bob"], "verified_only": ["flush"]}
    async with pending_flush(
        temporal_env, redis_server, approvals=verified, approval_signing_key="k" * 32
    ) as stage:
        earlier = stage.message
        await stage.handle.terminate("the earlier incident ended")
        same_id = stage.handle.id.rsplit("/", 1)[1]  # the harness's suffix: the same incident id
        handle = await start(temporal_env.client, stage.settings, auto(stage.redis.url), same_id)
        await wait_for_pending(handle, "flush", within=WAIT)
        today = await wait_for_body(
            stage.channel,
            lambda b: b != earlier and any(x.get("type") == "actions" for x in b["blocks"]),
            "today's approval request",
        )
        stale = form(click("U0ALICE", "approve", stage.button("approve"), stage.responses.url))
        assert (await stage.post(stale, signed(stale))).status_code == 200
        stage.handle, stage.message = handle, today
        status = await stage.timeline_until(
            lambda s: any(e.kind == "approval_refused" for e in s.timeline), "the stale refused"
        )
        assert command_calls(stage.redis.client(), "flushdb") == 0
        fresh = form(stage.click("U0BOB"))
        assert (await stage.post(fresh, signed(fresh))).status_code == 200
        report = await asyncio.wait_for(handle.result(), WAIT)

    refused = [e.message for e in status.timeline if e.kind == "approval_refused"]
    assert "made for another incident" in refused[0], refused
    assert command_calls(stage.redis.client(), "flushdb") == 1
    [approval] = report.approvals
    assert (approval.approver, approval.proof) == ("bob", "slack")
