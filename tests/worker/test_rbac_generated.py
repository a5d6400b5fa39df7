"""The shipped Role names the objects of the shipped targets, no fewer and no more, and the
sandbox holds the worker to it: its StatefulSet can be patched, a neighbour cannot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.cluster import SandboxCluster
from tests.sandbox_checks import NS, ROLE
from worker.rbac import roles_for
from worker.settings.loader import load_settings

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = str(Path(sys.executable).parent / "runbook")


def test_the_shipped_role_is_the_one_made_from_the_shipped_targets() -> None:
    """A configured target the Role does not cover, or a Role covering more, fails here."""
    (made,) = roles_for(load_settings(ROOT / "deploy" / "runbook.yaml"))
    (shipped,) = list(yaml.safe_load_all(ROLE.read_text()))
    assert shipped["metadata"] == made["metadata"]
    assert shipped["rules"] == made["rules"]
    writes = [r for r in shipped["rules"] if {"patch", "delete"} & set(r["verbs"])]
    assert writes and all(r.get("resourceNames") for r in writes)


def test_runbook_rbac_prints_a_role_per_namespace(tmp_path: Path) -> None:
    config = tmp_path / "runbook.yaml"
    config.write_text(
        "targets:\n"
        "  - {name: a, redis_url: 'redis://a/0', namespace: shop, statefulset: cache, pods: 3,"
        " api_deployment: shop-api}\n"
        "  - {name: b, redis_url: 'redis://b/0', namespace: shop, statefulset: sessions}\n"
        "  - {name: c, redis_url: 'redis://c/0', namespace: blog}\n"
    )
    done = subprocess.run(
        [RUNBOOK, "--config", str(config), "rbac"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    roles = {r["metadata"]["namespace"]: r for r in yaml.safe_load_all(done.stdout)}
    assert sorted(roles) == ["blog", "shop"]
    named = {
        (rule["resources"][0], tuple(rule["resourceNames"]))
        for rule in roles["shop"]["rules"]
        if "resourceNames" in rule
    }
    assert named == {
        ("statefulsets", ("cache", "sessions")),
        ("deployments", ("shop-api",)),
        ("pods", ("cache-0", "cache-1", "cache-2", "sessions-0")),
    }
    blog = {rule["resources"][0] for rule in roles["blog"]["rules"]}
    assert "deployments" not in blog  # that target has no API Deployment to patch


def _neighbour(cluster: SandboxCluster) -> None:
    with cluster.api_client() as api:
        apps = client.AppsV1Api(api)
        other = apps.read_namespaced_stateful_set("redis", NS).to_dict()
        body = {
            "metadata": {"name": "postgres", "namespace": NS},
            "spec": {**other["spec"], "replicas": 0},
        }
        apps.create_namespaced_stateful_set(NS, api.sanitize_for_serialization(body))


def test_the_worker_held_to_the_role_patches_its_statefulset_only(tmp_path: Path) -> None:
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        _neighbour(cluster)
        patch = {"metadata": {"annotations": {"runbook/check": "1"}}}
        with cluster.api_client(cluster.runbook_kubeconfig) as api:
            apps = client.AppsV1Api(api)
            apps.patch_namespaced_stateful_set("redis", NS, patch)
            with pytest.raises(ApiException) as refused:
                apps.patch_namespaced_stateful_set("postgres", NS, patch)
    assert refused.value.status == 403
