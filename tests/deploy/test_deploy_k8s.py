"""deploy/k8s: every manifest file and the rendered base and production overlay validate offline
against the Kubernetes 1.37 OpenAPI schemas (kubernetes-validate, strict: unknown fields fail),
and the rendered objects hold the properties the deployment promises.

The base and the production overlay are rendered by the real kustomize (`kubectl kustomize`).
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from sandbox.processes import kubectl
from worker.settings.loader import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
KUBERNETES = "1.37.0"
NS = "treebeard-production"
Obj = dict[str, Any]
KUBECTL = kubectl()


def load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Obj]:
    """The real kustomize renders the base and the overlay: `kubectl kustomize` (kustomize v5,
    in the kubectl 1.33 that scripts/ensure-kubectl.py puts beside the interpreter)."""
    run = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"kubectl kustomize {directory}: {run.stderr}"
    return [obj for obj in yaml.safe_load_all(run.stdout) if obj]


def manifest_files() -> list[Path]:
    skip = {"kustomization.yaml", "runbook.yaml", "resources.yaml"}  # not objects / a patch
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in skip)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_validates(path: Path) -> None:
    for obj in load_all(path):
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.fixture(params=[BASE, PRODUCTION], ids=["base", "production"])
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    objects = render(request.param)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    return objects


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_rendered_objects_validate_and_cover_the_deployment(rendered: list[Obj]) -> None:
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    assert all(o["metadata"]["namespace"] == NS for o in rendered)
    assert "Secret" not in kinds  # referenced by name only; created by the operator


def test_pods_are_locked_down_with_probes_and_resources(rendered: list[Obj]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == {"redis-runbook-worker", "redis-runbook-webhook"}
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "livenessProbe" in container and "readinessProbe" in container
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            assert container["args"][0] == name.removeprefix("redis-runbook-")
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts  # the only writable path
        secrets = [v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v]
        assert secrets == ["redis-runbook"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_rbac_is_the_checked_role_and_only_the_worker_gets_a_token(rendered: list[Obj]) -> None:
    (role,) = by_kind(rendered, "Role").values()
    (shipped,) = load_all(K8S / "rbac" / "role.yaml")
    assert (
        role["rules"] == shipped["rules"]
    )  # tests/kubernetes/test_kubernetes_rbac.py checks these rules
    (binding,) = by_kind(rendered, "RoleBinding").values()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    deployments = by_kind(rendered, "Deployment")
    worker = deployments["redis-runbook-worker"]["spec"]["template"]["spec"]
    webhook = deployments["redis-runbook-webhook"]["spec"]["template"]["spec"]
    assert worker["serviceAccountName"] == subject["name"]
    assert subject["name"] in by_kind(rendered, "ServiceAccount")
    assert webhook["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in webhook


def test_only_alertmanagers_namespace_reaches_the_webhook(rendered: list[Obj]) -> None:
    policy = by_kind(rendered, "NetworkPolicy")["redis-runbook-webhook"]["spec"]
    webhook = by_kind(rendered, "Deployment")["redis-runbook-webhook"]["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= webhook["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"namespaceSelector"}
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_service_and_pdbs_select_the_pods(rendered: list[Obj]) -> None:
    deployments = by_kind(rendered, "Deployment")
    (service,) = by_kind(rendered, "Service").values()
    webhook = deployments["redis-runbook-webhook"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= webhook["metadata"]["labels"].items()
    port_names = {p["name"] for p in webhook["spec"]["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    for name, pdb in by_kind(rendered, "PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the URL the shipped Alertmanager receiver posts to is this Service
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    (receiver,) = [r for r in am["receivers"] if r["name"] == "redis-runbook"]
    url = receiver["webhook_configs"][0]["url"]
    assert url.startswith(f"http://{service['metadata']['name']}.{NS}.svc:8080/")


def test_configmap_is_the_shipped_runbook_yaml(rendered: list[Obj]) -> None:
    (config,) = by_kind(rendered, "ConfigMap").values()
    shipped = (DEPLOY / "runbook.yaml").read_text()
    assert config["data"]["runbook.yaml"] == shipped, "copy deploy/runbook.yaml to k8s/base/"
    assert load_settings(BASE / "runbook.yaml").targets[0].namespace == NS


def test_production_overlay_changes_image_replicas_and_worker_resources() -> None:
    base = by_kind(render(BASE), "Deployment")
    production = by_kind(render(PRODUCTION), "Deployment")
    for deployment in production.values():
        assert deployment["spec"]["replicas"] == 2
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.com/platform/redis-runbook:0.1.0"
    worker = production["redis-runbook-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["memory"] == "512Mi"
    base_worker = base["redis-runbook-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert {k: v for k, v in worker.items() if k not in ("resources", "image")} == {
        k: v for k, v in base_worker.items() if k not in ("resources", "image")
    }


def test_a_broken_manifest_is_caught() -> None:
    """The validator is live: a typo'd field and a wrong type both fail."""
    (deployment,) = load_all(BASE / "webhook-deployment.yaml")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES, strict=True)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES, strict=True)
