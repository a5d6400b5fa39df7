"""deploy/helm/redis-runbook is the kustomize base as a chart: the real helm 4 renders it and
every object equals what the real kustomize renders from deploy/k8s/base, so the two ways to
install can never drift; values change only what they name; the chart's copies of
runbook.yaml and the Role's rules are the shipped ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from sandbox.processes import binary, kubectl

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHART = DEPLOY / "helm" / "redis-runbook"
NS = "treebeard-production"
KUBERNETES = "1.37.0"  # the schemas tests/deploy/test_deploy_k8s.py validates against


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects(text: str) -> dict[tuple[str, str], Any]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def helm(*options: str) -> dict[tuple[str, str], Any]:
    helm_binary = binary("helm", [Path(sys.executable).parent])
    return objects(run(helm_binary, "template", "redis-runbook", str(CHART), "-n", NS, *options))


def test_the_chart_renders_exactly_the_kustomize_base() -> None:
    kustomized = objects(run(kubectl(), "kustomize", str(DEPLOY / "k8s" / "base")))
    charted = helm()
    assert sorted(charted) == sorted(kustomized)
    for key, obj in kustomized.items():
        assert charted[key] == obj, key


def test_values_change_only_what_they_name() -> None:
    plain = helm()
    changed = helm("--set", "image.tag=0.2.0", "--set", "worker.replicas=2",
                   "--set", "temporal.address=temporal.example:7233")  # fmt: skip
    worker = changed[("Deployment", "redis-runbook-worker")]
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "redis-runbook:0.2.0" and worker["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TEMPORAL_ADDRESS"] == "temporal.example:7233"
    differs = {k for k in plain if plain[k] != changed[k]}
    assert differs == {
        ("Deployment", "redis-runbook-worker"),
        ("Deployment", "redis-runbook-webhook"),
    }


def test_the_configuration_can_come_from_values(tmp_path: Path) -> None:
    mine = {"targets": [{"name": "cache", "redis_url": "redis://cache:6379/0", "namespace": NS}],
            "approvals": {"timeout": "10m"}}  # fmt: skip
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": mine}))
    rendered = helm("-f", str(values))[("ConfigMap", "redis-runbook-config")]
    assert yaml.safe_load(rendered["data"]["runbook.yaml"]) == mine


def test_what_the_chart_renders_validates_strictly_with_any_values() -> None:
    changed = helm("--set", "image.tag=0.2.0", "--set", "webhook.replicas=3")
    for obj in changed.values():
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_charts_copies_are_the_shipped_files_and_it_lints() -> None:
    assert (CHART / "files" / "runbook.yaml").read_text() == (DEPLOY / "runbook.yaml").read_text()
    role = yaml.safe_load((DEPLOY / "k8s" / "rbac" / "role.yaml").read_text())
    assert yaml.safe_load((CHART / "values.yaml").read_text())["rbac"]["rules"] == role["rules"]
    run(binary("helm", [Path(sys.executable).parent]), "lint", "--strict", str(CHART))
