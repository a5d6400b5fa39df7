"""Approvals you can trust, with the shipped policy, against real parts: an identity
provider's key set served as a JWKS over HTTP on loopback (keys made here), the webhook under
uvicorn, the Temporal dev server, a real worker and a real out-of-memory Redis whose flush only
a verified person may approve."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.attestation import DecisionClaim, sign
from contracts.decisions import Decision
from contracts.incident import IncidentReport, IncidentStatus
from contracts.steps import StepName
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
from tests.intake.test_webhook_helpers import TOKEN, address, serve
from worker.settings.loader import load_settings
from worker.settings.runbook import Settings
from worker.webhook import create_app

ISSUER = "https://idp.example.test"
AUDIENCE = "redis-runbook"
SIGNING_KEY = "approval-signing-key-for-tests-0123456789abcdef"
SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "runbook.yaml"
WAIT = 60.0


# ---- the identity provider ---------------------------------------------------------------


@dataclass
class IdentityProvider:
    jwks_url: str
    key: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey  # never published

    def token(self, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        body |= {"email": "sre-a@example.com", **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1"})


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    keys = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(keys)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        yield IdentityProvider(f"http://127.0.0.1:{server.server_port}/jwks", key, other)
    finally:
        server.shutdown()
        server.server_close()


def alg_none_token() -> str:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "email": "alice"}
    body = jwt.utils.base64url_encode(json.dumps(claims).encode())
    return f"{header.decode()}.{body.decode()}."


# ---- the stage ---------------------------------------------------------------------------


def verified_settings(env: WorkflowEnvironment, redis_url: str, idp: IdentityProvider) -> Settings:
    """The shipped approval policy (every destructive step verified-only, its approvers, four
    eyes) on a worker and webhook for this Redis."""
    shipped = load_settings(SHIPPED).approvals
    assert StepName.FLUSH in shipped.verified_only
    settings = settings_for(
        redis_url,
        approvals=shipped.model_dump(mode="json"),
        webhook={"oidc": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": idp.jwks_url}},
        webhook_token=TOKEN,
        approval_signing_key=SIGNING_KEY,
    )
    settings.temporal.address = address(env)
    return settings


@dataclass
class Stage:
    handle: WorkflowHandle[Any, IncidentReport]
    redis: RedisProcess
    http: httpx.AsyncClient
    idp: IdentityProvider

    async def approve(self, token: str | None, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        payload = {"workflow_id": self.handle.id, "step": "flush", **body}
        return await self.http.post("/approvals", json=payload, headers=headers)

    async def status(self) -> IncidentStatus:
        status: IncidentStatus = await self.handle.query("status", result_type=IncidentStatus)
        return status

    def flushes(self) -> int:
        return command_calls(self.redis.client(), "flushdb")


@asynccontextmanager
async def flush_waiting(
    env: WorkflowEnvironment, redis_server: RedisFactory, requested_by: str = "carol", **policy: Any
) -> AsyncIterator[Stage]:
    server = full_evicting_redis(redis_server)
    with identity_provider() as idp:
        settings = verified_settings(env, server.url, idp)
        settings.approvals = settings.approvals.model_copy(update=policy)
        async with running_worker(env.client, settings):
            incident = auto(server.url, requested_by=requested_by)
            handle = await start(env.client, settings, incident)
            await wait_for_pending(handle, "flush", within=WAIT)
            with serve(create_app(settings)) as url:
                async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                    try:
                        yield Stage(handle, server, http, idp)
                    finally:
                        if (await handle.describe()).status.name == "RUNNING":  # type: ignore[union-attr]
                            await handle.terminate("test over")


def refusals(status: IncidentStatus) -> list[str]:
    return [e.message for e in status.timeline if e.kind == "approval_refused"]


async def until_refused(stage: Stage, count: int) -> list[str]:
    deadline = time.monotonic() + WAIT
    while len(found := refusals(await stage.status())) < count:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)
    return found


# ---- the tests ---------------------------------------------------------------------------


async def test_a_typed_name_does_not_flush_and_an_id_token_through_the_endpoint_does(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    async with flush_waiting(temporal_env, redis_server) as stage:
        handle = stage.handle
        await handle.signal("approve", {"step": "flush", "approver": "sre-a@example.com"})
        raw = Decision(step=StepName.FLUSH, approver="sre-a@example.com")
        with pytest.raises(WorkflowUpdateFailedError) as update:
            await handle.execute_update("decide", raw, result_type=str)
        claims = {"step": "flush", "approver": "sre-a@example.com", "proof": "oidc"}
        await handle.signal("approve", claims)  # claims a proof, carries none
        claim = DecisionClaim(
            workflow_id=handle.id, incident_run=(await stage.status()).incident_run,
            step=StepName.FLUSH, plan_digest=(await stage.status()).plan_digest,
            decision="approve", approver="sre-a@example.com", proof="oidc",
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        )  # fmt: skip
        not_the_key = SecretStr("not-the-key-" + "x" * 32)
        forged = raw.model_copy(update={"proof": "oidc", "attestation": sign(claim, not_the_key)})
        with pytest.raises(WorkflowUpdateFailedError) as forged_update:
            await handle.execute_update("decide", forged, result_type=str)
        refused = await until_refused(stage, 4)
        assert stage.flushes() == 0
        status = await stage.status()

        answer = await stage.approve(stage.idp.token(), comment="evidence read")
        report = await asyncio.wait_for(handle.result(), WAIT)
        flushes = stage.flushes()

    assert "takes only a verified approval" in str(update.value.cause)
    assert "takes only a verified approval" in refused[0] and "runbook approve" in refused[0]
    assert any("a signal cannot carry a verified decision" in r for r in refused)
    assert "the attestation is not valid" in str(forged_update.value.cause)
    assert status.pending_approvals[0].verified_only
    assert answer.status_code == 200, answer.text
    assert answer.json()["approver"] == "sre-a@example.com" and answer.json()["proof"] == "oidc"
    assert flushes == 1
    [approval] = report.approvals
    assert (approval.approver, approval.proof, approval.comment) == (
        "sre-a@example.com", "oidc", "evidence read",
    )  # fmt: skip


async def test_every_bad_token_gets_401_with_its_reason_and_decides_nothing(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    async with flush_waiting(temporal_env, redis_server) as stage:
        idp, now = stage.idp, int(time.time())
        answers = {
            "no token": await stage.approve(None),
            "expired": await stage.approve(idp.token(iat=now - 900, exp=now - 600)),
            "wrong audience": await stage.approve(idp.token(aud="someone-else")),
            "wrong issuer": await stage.approve(idp.token(iss="https://evil.example.test")),
            "another key": await stage.approve(idp.token(key=idp.other)),
            "alg none": await stage.approve(alg_none_token()),
            "no email": await stage.approve(idp.token(email=None)),
        }
        await asyncio.sleep(0.5)
        status = await stage.status()
        flushes = stage.flushes()

    reasons = {name: answer.json()["reason"] for name, answer in answers.items()}
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(
        answers, 401
    ), reasons
    assert "Bearer" in reasons["no token"]
    assert reasons["expired"] == "the token has expired"
    assert "audience" in reasons["wrong audience"]
    assert "not issued by" in reasons["wrong issuer"]
    assert "signature does not verify" in reasons["another key"]
    assert "'none' is not accepted" in reasons["alg none"]
    assert "no `email` claim" in reasons["no email"]
    assert flushes == 0
    assert [p.step for p in status.pending_approvals] == [StepName.FLUSH]
    assert status.pending_approvals[0].approved_by == []


async def test_a_decision_for_another_incident_or_a_changed_plan_is_refused(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    async with flush_waiting(temporal_env, redis_server) as stage:
        changed = await stage.approve(stage.idp.token(), plan_digest="0000000000000000")
        yesterday = Decision(
            step=StepName.FLUSH, approver="sre-b@example.com", incident_run="an-earlier-incident"
        )
        await stage.handle.signal("approve", yesterday.model_dump(mode="json"))
        refused = await until_refused(stage, 1)
        flushes = stage.flushes()

    assert changed.status_code == 409 and "plan has changed" in changed.json()["reason"]
    assert "made for another incident" in refused[0]
    assert flushes == 0


async def test_a_pre_approval_past_its_expiry_is_not_honoured(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """Approved before anyone saw today's evidence: with approvals.preapproval_expiry of 0s,
    the flush approved at start waits for a fresh approval; with the default (15m) it runs."""
    reports: dict[str, IncidentReport] = {}
    for expiry in ("0s", "15m"):
        server = full_evicting_redis(redis_server)
        settings = settings_for(server.url, approvals={"preapproval_expiry": expiry})
        async with running_worker(temporal_env.client, settings):
            handle = await start(
                temporal_env.client, settings, auto(server.url), f"pre-{expiry}",
                start_signal="approve", start_signal_args=[{"step": "flush", "approver": "bob"}],
            )  # fmt: skip
            if expiry == "0s":
                await wait_for_pending(handle, "flush", within=WAIT)
                await handle.signal("approve", {"step": "flush", "approver": "alice"})
            reports[expiry] = await asyncio.wait_for(handle.result(), WAIT)
        assert command_calls(server.client(), "flushdb") == 1

    stale, fresh = reports["0s"], reports["15m"]
    assert [(a.approver, a.expired) for a in stale.approvals] == [("bob", True), ("alice", False)]
    expired = [e.message for e in stale.timeline if e.kind == "approval_expired"]
    assert len(expired) == 1 and "bob's approval" in expired[0]
    assert [(a.approver, a.expired) for a in fresh.approvals] == [("bob", False)]
    assert not [e for e in fresh.timeline if e.kind == "approval_requested"]


async def test_runbook_approve_takes_its_token_from_the_configured_command(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """`runbook approve` with cli.approvals_url: no --as, the ID token (printed by
    cli.token_command) names the approver; a bad token is refused with the endpoint's reason."""
    runbook = str(Path(sys.executable).parent / "runbook")
    async with flush_waiting(temporal_env, redis_server) as stage:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "TEMPORAL_"))}
        env["RUNBOOK_CLI__APPROVALS_URL"] = str(stage.http.base_url)

        def approve(token: str) -> subprocess.CompletedProcess[str]:
            command = {**env, "RUNBOOK_CLI__TOKEN_COMMAND": f"echo {token}"}
            return subprocess.run(
                [runbook, "approve", stage.handle.id, "flush", "--comment", "read it"],
                env=command, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip

        expired = await asyncio.to_thread(approve, stage.idp.token(exp=int(time.time()) - 600))
        assert stage.flushes() == 0
        done = await asyncio.to_thread(approve, stage.idp.token(email="sre-b@example.com"))
        report = await asyncio.wait_for(stage.handle.result(), WAIT)
        flushes = stage.flushes()

    assert expired.returncode == 1 and "the token has expired" in expired.stderr, expired
    assert done.returncode == 0, done.stderr
    assert "as sre-b@example.com (verified by ID token)" in done.stdout
    assert flushes == 1
    assert [(a.approver, a.proof) for a in report.approvals] == [("sre-b@example.com", "oidc")]


async def test_four_eyes_compares_the_verified_identity_with_the_requester(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    async with flush_waiting(
        temporal_env, redis_server, requested_by="sre-a@example.com", four_eyes=True
    ) as stage:
        own = await stage.approve(stage.idp.token(email="sre-a@example.com"))
        assert stage.flushes() == 0
        other = await stage.approve(stage.idp.token(email="sre-b@example.com"))
        report = await asyncio.wait_for(stage.handle.result(), WAIT)

    assert own.status_code == 409 and "four eyes" in own.json()["reason"], own.text
    assert other.status_code == 200, other.text
    assert [(a.approver, a.proof) for a in report.approvals] == [("sre-b@example.com", "oidc")]
