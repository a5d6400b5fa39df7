"""docker-compose.yml is valid and wired: Debian's docker-compose 1.29 (`docker-compose config`,
which needs no Docker engine) checks it against the Compose specification schema it bundles
(compose/config/compose_spec.json); the resolved file then shows every service, healthchecks,
depends_on conditions, pinned images, loopback-only ports, and that the runbook's environment
really configures the worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.settings.loader import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {
    "temporal",
    "redis",
    "worker",
    "webhook",
    "redis-exporter",
    "prometheus",
    "alertmanager",
}


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/ensure-system-deps.sh installs it)")
    clean = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    done = compose_config(REDIS_PASSWORD="compose-test")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_the_compose_file_is_valid_against_the_compose_spec(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES


def test_the_redis_password_is_required() -> None:
    done = compose_config()
    assert done.returncode != 0
    assert "REDIS_PASSWORD" in done.stderr


def test_images_are_pinned_and_ports_are_loopback_only(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
        for port in service.get("ports", []):  # docker-compose 1.29 prints the short syntax
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_healthchecks_and_start_order(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    # redis_exporter's image is built from scratch: no shell or client to run a check with.
    for name in SERVICES - {"redis-exporter"}:
        assert "test" in services[name]["healthcheck"], name
    for name in ("worker", "webhook"):
        assert services[name]["depends_on"] == {
            "temporal": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert services["alertmanager"]["depends_on"]["webhook"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["alertmanager"]["condition"] == "service_healthy"


def test_the_shipped_files_are_the_ones_mounted(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    mounted = {  # short syntax: SOURCE:TARGET:MODE, bind mounts with an absolute source
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("/")
    }
    for path in (
        "deploy/redis/redis.conf",
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/rules",
        "deploy/alertmanager/alertmanager.yml",
        "deploy/runbook.yaml",
    ):
        assert str(ROOT / path) in mounted
        assert (ROOT / path).exists()
    # the webhook answers at the URL the shipped Alertmanager config names
    am = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    (receiver,) = [r for r in am["receivers"] if r["name"] == "redis-runbook"]
    host = receiver["webhook_configs"][0]["url"].split("/")[2].split(":")[0]
    assert host in services["webhook"]["networks"]["default"]["aliases"]
    assert services["webhook"]["read_only"] is True
    assert services["worker"]["read_only"] is True


def test_the_runbook_environment_configures_the_worker(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The worker's compose environment, applied over the shipped runbook.yaml, gives a
    Redis-only worker aimed at the `redis` service with the password from the environment."""
    env = dict(resolved["services"]["worker"]["environment"])
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    env["RUNBOOK_WEBHOOK_TOKEN_FILE"] = str(token)
    key_file = tmp_path / "approval-signing-key"
    key_file.write_text("0123456789abcdef" * 4 + "\n")
    env["RUNBOOK_APPROVAL_SIGNING_KEY_FILE"] = str(key_file)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(ROOT / "deploy" / "runbook.yaml")
    assert settings.temporal.address == "temporal:7233"
    assert settings.kubernetes.enabled is False
    (target,) = settings.targets
    assert target.redis_url == "redis://redis:6379/0"
    assert target.matches({"namespace": "treebeard-production", "alertname": "RedisDown"})
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "compose-test"
    assert settings.webhook_token is not None
    assert settings.approval_signing_key is not None  # verified approvals work out of the box
    assert json.loads(env["RUNBOOK_TARGETS"])[0]["namespace"] == "treebeard-production"
