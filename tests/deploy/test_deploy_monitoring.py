"""The shipped monitoring files pass their own tools: `promtool check rules`, `promtool test
rules` (unit tests with synthetic series, deploy/prometheus/tests/), `promtool check config`
and `amtool check-config`, all from Debian's packages. The rules use only metric names the
exporter and the webhook really export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from worker.intake.metrics import WebhookMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/ensure-system-deps.sh installs it)")
    return found


def run(*argv: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_promtool_checks_every_rule_file() -> None:
    assert [p.name for p in RULES] == ["redis.rules.yml", "runbook.rules.yml"]
    out = run(tool("promtool"), "check", "rules", *map(str, RULES))
    assert out.count("SUCCESS") == len(RULES)


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    out = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS), cwd=PROMETHEUS)
    assert "FAILED" not in out


def test_every_alert_has_a_unit_test() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert alerts == tested


def test_community_set_and_runbook_thresholds_are_present() -> None:
    rules = {
        rule["alert"]: rule
        for group in yaml.safe_load((PROMETHEUS / "rules" / "redis.rules.yml").read_text())[
            "groups"
        ]
        for rule in group["rules"]
    }
    for name in (
        "RedisDown",
        "RedisOutOfConfiguredMaxmemory",
        "RedisTooManyConnections",
        "RedisRejectedConnections",
    ):
        assert name in rules
    assert "> 0.8" in rules["RedisMemoryHigh"]["expr"]
    assert "* 60 > 100" in rules["RedisEvictionsHigh"]["expr"]
    assert "< 0.6" in rules["RedisHitRateLow"]["expr"]
    assert "RedisLatencyHigh" in rules
    assert "RedisReplicationLag" in rules


def test_system_rules_use_the_webhooks_real_metric_names() -> None:
    exported = {m.name for m in WebhookMetrics().registry.collect()}
    text = (PROMETHEUS / "rules" / "runbook.rules.yml").read_text()
    used = set(re.findall(r"runbook_webhook_\w+", text))
    assert used
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in exported, f"{name}: the webhook exports {sorted(exported)}"


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    """promtool resolves rule_files relative to the config: check a copy that points at the
    shipped rules (the compose file mounts them at /etc/prometheus/rules)."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS / "rules" / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    out = run(tool("promtool"), "check", "config", str(copy))
    assert "SUCCESS" in out


def test_amtool_accepts_the_alertmanager_config() -> None:
    out = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in out


def test_receiver_sends_resolved_with_a_bearer_token_file_grouped_by_target() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "redis-runbook"]
    assert route["group_by"][0] == "namespace"
    assert route["continue"] is True
    (receiver,) = [r for r in config["receivers"] if r["name"] == "redis-runbook"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith("/alerts/alertmanager")
    assert hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer"
    assert "credentials_file" in auth and "credentials" not in auth
