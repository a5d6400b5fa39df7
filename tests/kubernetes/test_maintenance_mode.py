"""Maintenance mode's two ways against the sandbox, each held to the Role `runbook rbac` makes
for it: the API's Service pointed at a maintenance Deployment scaled up (and back), and the
env var on the API; each put back exactly as it was, each a no-op when repeated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from temporalio.exceptions import ApplicationError

from activities.kubernetes.client import KubernetesAccess, read_json
from activities.kubernetes.steps import KubernetesActivities
from activities.targets import ConfiguredTarget, TargetBook, Workload
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster
from worker.rbac import roles_for
from worker.settings.runbook import Settings

NS = "treebeard-production"
ROUTED = {"deployment": "treebeard-maintenance", "service": "treebeard-api",
          "selector": {"app": "treebeard-maintenance"}, "replicas": 2}  # fmt: skip
ENV = {"env": {"MAINTENANCE_MODE": "true", "DATABASE_URL": "postgres://maintenance:5432/x"}}


def route(redis_url: str, maintenance: dict[str, Any]) -> dict[str, Any]:
    workload = {"maintenance": maintenance}
    return {"name": "sandbox", "redis_url": redis_url, "namespace": NS,
            "api_deployment": "treebeard-api", "workload": workload}  # fmt: skip


@pytest.fixture(params=["routed", "env"])
def mode(request: pytest.FixtureRequest) -> dict[str, Any]:
    return ROUTED if request.param == "routed" else ENV


@pytest.fixture
def held(tmp_path: Path, mode: dict[str, Any]) -> Iterator[SandboxCluster]:
    """A sandbox whose runbook token holds the Role generated for this target."""
    settings = Settings(targets=[route("redis://127.0.0.1:1/0", mode)])
    role = tmp_path / "role.yaml"
    role.write_text(yaml.safe_dump(roles_for(settings)[0]))
    with SandboxCluster(tmp_path / "sandbox", role_file=role) as cluster:
        with cluster.api_client() as admin:
            add_maintenance_objects(admin)
        yield cluster


def add_maintenance_objects(admin: client.ApiClient) -> None:
    labels = {"app": "treebeard-maintenance"}
    container = {"name": "page", "image": "nginx:1.27"}
    apps: Any = client.AppsV1Api(admin)
    apps.create_namespaced_deployment(NS, {
        "metadata": {"name": "treebeard-maintenance", "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    })  # fmt: skip
    core: Any = client.CoreV1Api(admin)
    core.create_namespaced_service(NS, {
        "metadata": {"name": "treebeard-api"},
        "spec": {"selector": {"app": "treebeard-api"}, "ports": [{"port": 80, "targetPort": 8080}]},
    })  # fmt: skip


def steps_for(
    cluster: SandboxCluster, mode: dict[str, Any]
) -> tuple[KubernetesActivities, RedisTarget]:
    target = RedisTarget(redis_url=cluster.redis_url, namespace=NS, statefulset="redis",
                         api_deployment="treebeard-api")  # fmt: skip
    workload = Workload.model_validate({"maintenance": mode})
    book = TargetBook([ConfiguredTarget(name="sandbox", target=target, workload=workload)])
    access = KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig)
    return KubernetesActivities.from_access(access, book), target


def seen(cluster: SandboxCluster) -> dict[str, Any]:
    """What a person would check: the Service's selector, the maintenance replicas, the
    API container's env, and every annotation the runbook keeps."""
    with cluster.api_client() as admin:
        apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
        svc = read_json(core.read_namespaced_service, "treebeard-api", NS, timeout=(5, 5))
        page = read_json(apps.read_namespaced_deployment, "treebeard-maintenance", NS,
                         timeout=(5, 5))  # fmt: skip
        api = read_json(apps.read_namespaced_deployment, "treebeard-api", NS, timeout=(5, 5))
    env = api["spec"]["template"]["spec"]["containers"][0].get("env")
    return {
        "selector": svc["spec"]["selector"],
        "replicas": page["spec"]["replicas"],
        "env": env,
        "annotations": [o["metadata"].get("annotations") or {} for o in (svc, page, api)],
    }


def test_maintenance_mode_goes_on_and_comes_back_exactly_as_it_was(
    held: SandboxCluster, mode: dict[str, Any]
) -> None:
    steps, target = steps_for(held, mode)
    before = seen(held)
    on = steps.enter_maintenance(target)
    during = seen(held)
    assert on.changed
    if mode is ROUTED:
        assert during["selector"] == {"app": "treebeard-maintenance"} and during["replicas"] == 2
        assert during["env"] == before["env"]
    else:
        env = {e["name"]: e["value"] for e in during["env"]}
        assert env["MAINTENANCE_MODE"] == "true" and env["CACHE_ENABLED"] == "true"
        assert env["DATABASE_URL"] == "postgres://maintenance:5432/x"
        assert during["selector"] == before["selector"]
        assert on.before == {
            "MAINTENANCE_MODE": None,
            "DATABASE_URL": "postgres://db:5432/treebeard",
        }
    assert not steps.enter_maintenance(target).changed  # a retry finds its work done
    off = steps.end_maintenance(target)
    assert off.changed and "ended" in off.summary
    assert seen(held) == before  # every value and annotation as it was
    assert not steps.end_maintenance(target).changed


def test_without_maintenance_configured_the_step_refuses(tmp_path: Path) -> None:
    with SandboxCluster(tmp_path / "sandbox") as cluster:
        target = RedisTarget(redis_url=cluster.redis_url, namespace=NS, statefulset="redis",
                             api_deployment="treebeard-api")  # fmt: skip
        book = TargetBook([ConfiguredTarget(name="sandbox", target=target)])
        steps = KubernetesActivities.from_access(
            KubernetesAccess(kubeconfig=cluster.kubeconfig), book
        )
        with pytest.raises(ApplicationError, match=r"no workload\.maintenance") as err:
            steps.enter_maintenance(target)
        assert err.value.non_retryable


def test_maintenance_env_may_not_share_a_name_with_the_fallback() -> None:
    with pytest.raises(ValueError, match="CACHE_ENABLED is also set by the fallback"):
        Workload.model_validate({"maintenance": {"env": {"CACHE_ENABLED": "false"}}})
    with pytest.raises(ValueError, match="not both"):
        Workload.model_validate({"maintenance": {**ENV, **ROUTED}})


def test_the_role_names_the_maintenance_objects_and_patches_nothing_else() -> None:
    settings = Settings(targets=[route("redis://127.0.0.1:1/0", ROUTED)])
    rules = roles_for(settings)[0]["rules"]
    services = [r for r in rules if r["resources"] == ["services"]]
    assert services == [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "patch"],
                         "resourceNames": ["treebeard-api"]}]  # fmt: skip
    deployments = next(r for r in rules if r["resources"] == ["deployments"])
    assert deployments["resourceNames"] == ["treebeard-api", "treebeard-maintenance"]
