"""deploy/redis/redis.conf runs on a real redis-server with the runbook's prevention settings,
the runbook can still diagnose it, and its renamed FLUSHDB is what deploy/runbook.yaml says:
the `flush` step fails once as a non-retryable CommandUnavailable, never retried."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry
from temporalio.exceptions import ApplicationError

from activities.redis.diagnosis import RedisDiagnosisActivities
from activities.redis.errors import COMMAND_UNAVAILABLE, NON_RETRYABLE
from activities.redis.remediation import RedisRemediationActivities
from activities.targets import ConfiguredTarget, RedisAccess, TargetBook
from contracts.target import RedisTarget
from sandbox.processes import binary, free_port, stop_process, wait_for_port
from worker.settings.loader import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONF = DEPLOY / "redis" / "redis.conf"
PASSWORD = "from-the-environment"


@pytest.fixture
def shipped_redis(tmp_path: Path) -> Iterator[int]:
    """The shipped file, with only what a test must change: loopback, a free port, a temporary
    dir, and the password given on the command line as the compose file does."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(binary("redis-server"), str(CONF), "--port", str(port), "--bind", "127.0.0.1"),
            *("--dir", str(tmp_path), "--requirepass", PASSWORD),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


def test_prevention_settings_are_in_force(shipped_redis: int) -> None:
    client = redis.Redis(port=shipped_redis, password=PASSWORD, decode_responses=True)
    config = {str(k): str(v) for k, v in client.config_get("*").items()}
    assert config["maxmemory-policy"] == "allkeys-lru"
    assert int(config["maxmemory"]) > 0
    assert config["save"] == "900 1 300 10"
    assert config["tcp-keepalive"] == "60"
    assert config["maxclients"] == "10000"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=shipped_redis, retry=Retry(NoBackoff(), 0)).ping()
    for command in ("FLUSHDB", "FLUSHALL", "KEYS *"):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(command)  # type: ignore[no-untyped-call]
    client.close()


async def test_the_runbook_diagnoses_it_and_reports_flushdb_as_unavailable(
    shipped_redis: int,
) -> None:
    access = RedisAccess(password=SecretStr(PASSWORD))
    target = RedisTarget(redis_url=f"redis://127.0.0.1:{shipped_redis}/0")
    targets = TargetBook([ConfiguredTarget(name="shipped", target=target, access=access)])

    diagnosis = await RedisDiagnosisActivities(targets).diagnose_redis(target)
    assert diagnosis.reachable, diagnosis.findings

    with pytest.raises(ApplicationError) as err:
        await RedisRemediationActivities(targets).flush(target)
    assert err.value.type == COMMAND_UNAVAILABLE
    assert err.value.non_retryable
    assert COMMAND_UNAVAILABLE in NON_RETRYABLE


def test_the_shipped_policy_gates_flush_and_says_why() -> None:
    path = DEPLOY / "runbook.yaml"
    settings = load_settings(path)
    assert "flush" in [step.value for step in settings.approvals.required_for]
    text = path.read_text()
    assert "renames FLUSHDB" in text and "CommandUnavailable" in text
    assert settings.redis_password is None and settings.webhook_token is None
