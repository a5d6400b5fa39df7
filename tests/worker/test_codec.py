"""Encrypted payloads (temporal.codec): a slow-commands incident whose triage read SLOWLOG
arguments naming a key, and an alert label, leaves none of them in clear in Temporal's raw
history, while the same incident without the codec does, and `runbook report` shows them
decoded; the codec server decodes a sealed payload for the holder of its token only; the
replay corpus, written in clear, still replays through it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.alerts import Alert
from contracts.diagnosis import Scenario
from tests.conftest import RedisFactory
from tests.harness import auto, redis_in_state, running_worker, settings_for, start
from tests.workflows.test_replay import HISTORIES
from worker.client import data_converter
from worker.payloads.codec import ENCODING, CodecError, EncryptionCodec, read_key
from worker.payloads.server import create_codec_app
from worker.runner import workflow_runner
from worker.settings.runbook import CodecSettings, Settings
from worker.telemetry import tracing_interceptor
from workflows.incident.workflow import RedisCacheFailure

SECRETS = (b"customer-ssn:123-45-6789", b"acme-secret-tenant")
RUNBOOK = str(Path(sys.executable).parent / "runbook")


def key_file(tmp_path: Path, name: str = "k1") -> Path:
    path = tmp_path / f"{name}.key"
    path.write_text(os.urandom(32).hex() + "\n")
    return path


async def raw_history(
    env: WorkflowEnvironment, settings: Settings, url: str, codec: bool
) -> tuple[bytes, str]:
    """One slow-commands incident whose SLOWLOG holds a read naming a sensitive key, opened by
    an alert with a sensitive label: its history as Temporal stores it, and its id."""
    client = await Client.connect(env.client.service_client.config.target_host,
                                  data_converter=data_converter(settings.temporal))  # fmt: skip
    alert = Alert(source="alertmanager", name="RedisSlowCommands",
                  labels={"tenant": SECRETS[1].decode()}, fingerprint="f-secret")  # fmt: skip
    incident = auto(url).model_copy(update={"alerts": [alert]})
    async with running_worker(client, settings):
        handle = await start(client, settings, incident, "codec" if codec else "clear")
        report = await handle.result()
    assert report.scenario is Scenario.SLOW_COMMANDS, report.reasons
    assert any(SECRETS[0].decode() in e.command for e in report.diagnosis.slowlog)  # it was read
    plain = await Client.connect(env.client.service_client.config.target_host,
                                 data_converter=pydantic_data_converter)  # fmt: skip
    history = await plain.get_workflow_handle(handle.id).fetch_history()
    return b"".join(e.SerializeToString() for e in history.events), handle.id


@pytest.fixture
def slow_redis(redis_server: RedisFactory) -> str:
    """A slow-commands incident's Redis, whose SLOWLOG also holds a slow read naming a key."""
    url, _ = redis_in_state(redis_server, Scenario.SLOW_COMMANDS)
    busy = "local i = 0 while i < 3000000 do i = i + 1 end return 1"
    with redis.Redis.from_url(url) as conn:
        conn.execute_command("EVAL_RO", busy, 1, SECRETS[0].decode())
    return url


async def test_nothing_sensitive_is_in_the_history_in_clear_with_the_codec(
    temporal_env: WorkflowEnvironment, slow_redis: str, tmp_path: Path
) -> None:
    settings = settings_for(slow_redis, approvals={"required_for": []})
    clear, _ = await raw_history(temporal_env, settings, slow_redis, codec=False)
    assert all(secret in clear for secret in SECRETS)  # without it, they are there

    settings.temporal.codec = CodecSettings(keys={"k1": key_file(tmp_path)}, active="k1")
    sealed, workflow_id = await raw_history(temporal_env, settings, slow_redis, codec=True)
    assert not [s for s in SECRETS if s in sealed]
    assert ENCODING in sealed
    # `runbook report`, given the key, shows them decoded
    config = tmp_path / "runbook.yaml"
    config.write_text(yaml.safe_dump({"temporal": {
        "address": temporal_env.client.service_client.config.target_host,
        "codec": {"keys": {"k1": str(settings.temporal.codec.keys["k1"])}, "active": "k1"},
    }}))  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k != "RUNBOOK_CONFIG"}
    argv = [RUNBOOK, "--config", str(config), "report", workflow_id, "--json"]
    report = await asyncio.to_thread(
        lambda: subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=60)
    )
    assert report.returncode == 0, report.stderr
    assert all(secret.decode() in report.stdout for secret in SECRETS)


async def test_the_codec_server_decodes_for_its_token_only(tmp_path: Path) -> None:
    codec = EncryptionCodec({"k1": read_key(key_file(tmp_path))}, "k1")
    (sealed,) = await data_converter_for(codec).encode([{"tenant": SECRETS[1].decode()}])
    body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode()
                                       for k, v in sealed.metadata.items()},
                          "data": base64.b64encode(sealed.data).decode()}]}  # fmt: skip
    app = create_codec_app(codec, "t0ken", "http://localhost:8233")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec") as http:
        assert (await http.post("/decode", json=body)).status_code == 401
        wrong = await http.post("/decode", json=body, headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        answer = await http.post("/decode", json=body, headers={"Authorization": "Bearer t0ken"})
        preflight = await http.options("/decode", headers={"Origin": "http://localhost:8233"})
    assert answer.status_code == 200
    (decoded,) = answer.json()["payloads"]
    assert SECRETS[1] in base64.b64decode(decoded["data"])
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert answer.headers["access-control-allow-origin"] == "http://localhost:8233"
    assert preflight.status_code == 204


async def test_keys_rotate_and_a_missing_key_says_which(tmp_path: Path) -> None:
    old, new = read_key(key_file(tmp_path, "old")), read_key(key_file(tmp_path, "new"))
    clear = pydantic_data_converter.payload_converter.to_payloads(["x"])
    (sealed,) = await EncryptionCodec({"old": old}, "old").encode(clear)
    rotated = EncryptionCodec({"old": old, "new": new}, "new")
    assert (await rotated.decode([sealed]))[0].data == b'"x"'
    with pytest.raises(CodecError, match="key 'old', which this process does not hold"):
        await EncryptionCodec({"new": new}, "new").decode([sealed])
    bad = tmp_path / "bad.key"
    bad.write_text("too short")
    with pytest.raises(CodecError, match="openssl rand -hex 32"):
        read_key(bad)


@pytest.mark.parametrize("path", HISTORIES[:3], ids=[p.stem for p in HISTORIES[:3]])
async def test_the_clear_corpus_replays_through_the_codec(path: Path, tmp_path: Path) -> None:
    codec = EncryptionCodec({"k1": read_key(key_file(tmp_path))}, "k1")
    replayer = Replayer(
        workflows=[RedisCacheFailure],
        data_converter=data_converter_for(codec),
        interceptors=[tracing_interceptor()],
        workflow_runner=workflow_runner(),
    )
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    assert ENCODING.decode() not in history.to_json()  # it was written in clear


def data_converter_for(codec: EncryptionCodec) -> DataConverter:
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
