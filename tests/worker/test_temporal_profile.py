"""Temporal client settings the Temporal way (temporalio.envconfig): a `runbook worker` and the
CLI that know the server only from a profile file, as the `temporal` CLI reads it, run an
incident; runbook.yaml's address wins where it is set; the standard variables (API key, TLS)
are honoured; a profile naming a client certificate that is not there stops the process at
start with the setting to fix."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from sandbox.processes import Daemon
from tests.conftest import RedisFactory
from tests.harness import dry_run, start, target_route
from worker.client import connect_options
from worker.settings.runbook import Settings, TemporalSettings

RUNBOOK = str(Path(sys.executable).parent / "runbook")


def profile_file(tmp_path: Path, address: str, tls: str = "") -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(f'[profile.ops]\naddress = "{address}"\nnamespace = "default"\n{tls}')
    return path


def runbook_yaml(tmp_path: Path, profile: Path, queue: str, redis_url: str) -> Path:
    path = tmp_path / "runbook.yaml"  # no temporal.address: only the profile knows the server
    path.write_text(yaml.safe_dump({
        "temporal": {"profile": "ops", "config_file": str(profile), "task_queue": queue},
        "kubernetes": {"enabled": False},
        "targets": [target_route(redis_url)],
    }))  # fmt: skip
    return path


def clean_env(tmp_path: Path) -> dict[str, str]:
    drop = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "RUNBOOK_CONFIG", "TEMPORAL_CONFIG_FILE"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "HOME": str(tmp_path)}


async def test_the_worker_and_the_cli_find_temporal_through_a_profile(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, tmp_path: Path
) -> None:
    address = temporal_env.client.service_client.config.target_host
    redis = redis_server()
    queue = f"profile-{os.getpid()}"
    config = runbook_yaml(tmp_path, profile_file(tmp_path, address), queue, redis.url)
    environ = clean_env(tmp_path)
    worker = Daemon("worker", [RUNBOOK, "--config", str(config), "worker"],
                    tmp_path / "worker.log", environ)  # fmt: skip
    try:
        settings = Settings(temporal=TemporalSettings(task_queue=queue))
        handle = await start(temporal_env.client, settings, dry_run(redis.url))
        report = await asyncio.wait_for(handle.result(), 60)
        listed = await asyncio.to_thread(
            lambda: subprocess.run(
                [RUNBOOK, "--config", str(config), "list", "--all"],
                env=environ,
                capture_output=True,
                text=True,
                timeout=60,
            )
        )
    finally:
        worker.stop()
    assert report.outcome == "planned"
    assert listed.returncode == 0, listed.stderr
    assert handle.id in listed.stdout


def test_runbook_yaml_wins_and_the_standard_variables_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = profile_file(tmp_path, "temporal.example:7233")
    from_profile = connect_options(TemporalSettings(profile="ops", config_file=profile))
    assert from_profile["target_host"] == "temporal.example:7233"
    mine = TemporalSettings(profile="ops", config_file=profile, address="127.0.0.1:7233")
    assert connect_options(mine)["target_host"] == "127.0.0.1:7233"
    monkeypatch.setenv("TEMPORAL_API_KEY", "an-api-key")
    keyed = connect_options(TemporalSettings(profile="ops", config_file=profile))
    assert keyed["api_key"] == "an-api-key"


def test_a_missing_client_certificate_stops_the_cli_naming_the_setting(tmp_path: Path) -> None:
    tls = ('[profile.ops.tls]\nclient_cert_path = "/missing/client.crt"\n'
           'client_key_path = "/missing/client.key"\n')  # fmt: skip
    profile = profile_file(tmp_path, "127.0.0.1:7233", tls)
    config = runbook_yaml(tmp_path, profile, "q", "redis://127.0.0.1:1/0")
    done = subprocess.run([RUNBOOK, "--config", str(config), "list"], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "/missing/client.crt" in done.stderr and "client_cert_path" in done.stderr
