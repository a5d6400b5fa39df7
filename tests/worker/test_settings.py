"""runbook.yaml + environment: defaults, overrides, and errors that name file, field and fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from worker.runner import kubernetes_access
from worker.settings.loader import load_settings
from worker.settings.runbook import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "RUNBOOK_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runbook.yaml"
    path.write_text(text)
    return path


def test_example_file_loads_and_matches_the_design() -> None:
    settings = load_settings(ROOT / "runbook.example.yaml")
    assert settings.temporal.task_queue == "runbooks"
    assert settings.approvals.timeout == timedelta(minutes=15)
    route = settings.targets[0]
    assert route.matches({"namespace": "treebeard-production", "alertname": "RedisDown"})
    assert not route.matches({"namespace": "treebeard-production", "alertname": "NodeDown"})
    assert not route.matches({"alertname": "RedisDown"})
    assert route.to_target().workflow_id == "redis-cache-failure/treebeard-production/redis"


def test_kubernetes_timeouts_reach_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_settings(ROOT / "runbook.example.yaml")
    assert kubernetes_access(example).timeouts == (3.0, 5.0)
    path = write(tmp_path, "kubernetes: {connect_timeout: 1s, request_timeout: 4s}\n")
    monkeypatch.setenv("RUNBOOK_CONFIG", str(path))
    monkeypatch.setenv("RUNBOOK_KUBERNETES__REQUEST_TIMEOUT", "2500ms")
    assert kubernetes_access(load_settings()).timeouts == (1.0, 2.5)


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.temporal.address == "localhost:7233"
    assert settings.policy.approvals.approvers == ["*"]


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "temporal: {address: file:7233}\napprovals: {timeout: 15m}\n")
    monkeypatch.setenv("RUNBOOK_CONFIG", str(path))
    monkeypatch.setenv("RUNBOOK_APPROVALS__TIMEOUT", "5m")
    assert load_settings().temporal.address == "file:7233"
    monkeypatch.setenv("TEMPORAL_ADDRESS", "env:7233")
    settings = load_settings()
    assert settings.temporal.address == "env:7233"
    assert settings.approvals.timeout == timedelta(minutes=5)


def test_secrets_from_environment_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    monkeypatch.setenv("RUNBOOK_REDIS_PASSWORD_FILE", str(secret))
    settings = load_settings(write(tmp_path, ""))
    assert settings.redis_access.password is not None
    assert settings.redis_access.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.policy.model_dump_json()


def test_secret_written_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RUNBOOK_REDIS_PASSWORD"):
        load_settings(write(tmp_path, "redis_password: hunter2\n"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temporal: {adress: x}\n", ["runbook.yaml:1", "temporal.adress", "spelling"]),
        ("approvals:\n  timeout: soon\n", ["runbook.yaml:2", "approvals.timeout", "15m"]),
        ("thresholds:\n  memory_ratio: lots\n", ["runbook.yaml:2", "memory_ratio", "number"]),
        ("targets:\n  - name: x\n    redis_url: http://r\n", ["targets.0", "redis://"]),
        ("targets:\n  - name: x\n    redis_url: redis://r\n    match: {a: '('}\n", ["regex"]),
        ("temporal: [\n", ["runbook.yaml:", "not valid YAML"]),
        ("- a\n- b\n", ["top level must be a mapping"]),
    ],
)
def test_broken_file_names_file_field_and_fix(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    message = str(err.value)
    for part in expected:
        assert part in message, message
    assert "Fix" in message or "must" in message


def test_bad_environment_override_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_APPROVALS__FOUR_EYES", "maybe")
    with pytest.raises(ConfigError, match="environment variable RUNBOOK_APPROVALS__FOUR_EYES"):
        load_settings(write(tmp_path, ""))


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RUNBOOK_CONFIG"):
        load_settings(tmp_path / "nope.yaml")


TWO_TARGETS = """
targets:
  - {name: a, redis_url: "redis://a:6379/0", namespace: one, password_env: A_REDIS_PASSWORD}
  - {name: b, redis_url: "redis://b:6379/0", namespace: two%s}
"""


def test_each_target_has_its_own_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "b-password"
    secret.write_text("bee\n")
    monkeypatch.setenv("A_REDIS_PASSWORD", "ay")
    settings = load_settings(write(tmp_path, TWO_TARGETS % f", password_file: {secret}"))
    passwords = {
        t.name: t.access.password.get_secret_value() if t.access.password else None
        for t in settings.target_book().configured
    }
    assert passwords == {"a": "ay", "b": "bee"}


def test_the_default_password_never_serves_two_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A_REDIS_PASSWORD", "ay")
    monkeypatch.setenv("RUNBOOK_REDIS_PASSWORD", "shared")
    with pytest.raises(ConfigError, match=r"single target only.*missing: b"):
        load_settings(write(tmp_path, TWO_TARGETS % ""))
    single = load_settings(write(tmp_path, "targets: [{name: a, redis_url: 'redis://a/0'}]\n"))
    (only,) = single.target_book().configured
    assert only.access.password is not None
    assert only.access.password.get_secret_value() == "shared"


def test_a_missing_target_secret_stops_the_worker_not_the_cli(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, TWO_TARGETS % ""))  # A_REDIS_PASSWORD unset
    assert settings.route_for(settings.targets[0].to_target()) is not None  # the CLI works
    with pytest.raises(ConfigError, match="password_env A_REDIS_PASSWORD is not set"):
        settings.target_book()


@pytest.mark.parametrize(
    ("second", "shared"),
    [
        ("{name: a, redis_url: 'redis://c/0', namespace: three}", "name"),
        ("{name: c, redis_url: 'redis://c/0', namespace: one}", "namespace/statefulset"),
    ],
)
def test_targets_are_unambiguous(tmp_path: Path, second: str, shared: str) -> None:
    text = f"targets:\n  - {{name: a, redis_url: 'redis://a/0', namespace: one}}\n  - {second}\n"
    with pytest.raises(ConfigError, match=f"share the {shared}"):
        load_settings(write(tmp_path, text))


def test_a_sentinel_target_is_checked_and_its_secret_read_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = (
        "targets:\n  - {name: a, redis_url: 'redis://a/0', pods: 3, sentinel: {master_name: m,"
        " addresses: [%s], password_env: SENTINEL_PASSWORD}}\n"
    )
    with pytest.raises(ConfigError, match="'s1' is not host:port"):
        load_settings(write(tmp_path, group % "s1"))
    settings = load_settings(write(tmp_path, group % "'s1:26379', 's2:26380'"))
    with pytest.raises(ConfigError, match=r"sentinel\.password_env SENTINEL_PASSWORD is not set"):
        settings.target_book()
    monkeypatch.setenv("SENTINEL_PASSWORD", "sesame")
    (only,) = settings.target_book().configured
    assert only.access.sentinel is not None
    assert only.access.sentinel.addresses == (("s1", 26379), ("s2", 26380))
    assert only.access.sentinel.password is not None
    assert only.access.sentinel.password.get_secret_value() == "sesame"
