"""deploy/k8s/rbac/role.yaml grants exactly what the Kubernetes activities use.

The sandbox API server holds the runbook's token to the Role (403 for anything else) and
audits every request. Running every activity, each code path that calls the API, must meet
no 403, and the (verb, apiGroup, resource) triples the audit recorded must equal the ones
the Role grants: a new API call without a Role change fails here, and so does a Role rule
nothing uses any more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.exceptions import ApplicationError

from activities.kubernetes.client import K8S_FORBIDDEN, KubernetesAccess
from activities.kubernetes.steps import KubernetesActivities
from activities.targets import ConfiguredTarget, TargetBook, Workload
from activities.warming.job import JobWarmer
from activities.warming.models import Warmer
from contracts.target import RedisTarget
from sandbox.cluster import RUNBOOK_USER, SandboxCluster
from sandbox.kube.rbac import granted_pairs, load_role_rules
from tests.sandbox_checks import ROLE

NS = "treebeard-production"
SHIPPED = Workload(config_map="redis-config")  # the shipped target's (deploy/runbook.yaml)
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "runbook.yaml"


def shipped_warmer() -> Warmer:
    """The shipped target's Job warmer: the warm script in the API's image."""
    target = yaml.safe_load(CONFIG.read_text())["targets"][0]
    return Warmer.model_validate(target["warmers"][0])


def target(cluster: SandboxCluster) -> RedisTarget:
    return RedisTarget(
        redis_url=cluster.redis_url,
        namespace=NS,
        statefulset="redis",
        api_deployment="treebeard-api",
        api_replicas=3,
        fallback_replicas=5,
    )


def exercise_every_activity(steps: KubernetesActivities, tgt: RedisTarget) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    assert steps.inspect_kubernetes(tgt).reachable
    steps.restart(tgt, "rbac-check")
    assert steps.wait_ready(tgt, deadline, 0.1).ready
    steps.raise_memory_limit(tgt, "48Mi")
    assert steps.wait_ready(tgt, deadline, 0.1).ready
    steps.force_delete_pod(tgt)
    assert steps.wait_ready(tgt, deadline, 0.1).ready
    fallback = steps.enable_fallback(tgt)
    steps.re_enable(tgt)
    steps.scale(tgt, fallback.original_replicas)
    warmed = JobWarmer(steps.api_client, (5.0, 5.0)).run(shipped_warmer(), tgt, "sandbox", "rbac")
    assert "completed" in warmed, warmed


def test_role_grants_exactly_what_the_activities_use(tmp_path: Path) -> None:
    with SandboxCluster(tmp_path / "sandbox", role_file=ROLE) as cluster:
        tgt = target(cluster)
        steps = KubernetesActivities.from_access(
            KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig),
            TargetBook([ConfiguredTarget(name="sandbox", target=tgt, workload=SHIPPED)]),
        )
        exercise_every_activity(steps, tgt)
        user = RUNBOOK_USER.format(namespace=NS)
        records = [r for r in cluster.api.audit if r.user == user]
    assert records
    assert [r for r in records if r.code == 403] == []
    used = {(r.verb, r.api_group, r.resource) for r in records}
    granted = granted_pairs(load_role_rules(ROLE))
    assert used <= granted, f"the Role lacks {sorted(used - granted)}"
    assert granted <= used, f"the Role grants unused {sorted(granted - used)}"


def test_an_activity_needing_more_than_the_role_fails(tmp_path: Path) -> None:
    """With `delete pods` taken out of the Role, force_delete_pod meets a 403: the API
    server refuses what the Role lacks, and the activity says so, non-retryably."""
    role = yaml.safe_load(ROLE.read_text())
    for rule in role["rules"]:
        if rule["resources"] == ["pods"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "delete"]
    smaller = tmp_path / "role.yaml"
    smaller.write_text(yaml.safe_dump(role))
    with SandboxCluster(tmp_path / "sandbox", role_file=smaller) as cluster:
        steps = KubernetesActivities.from_access(
            KubernetesAccess(kubeconfig=cluster.runbook_kubeconfig)
        )
        with pytest.raises(ApplicationError) as err:
            steps.force_delete_pod(target(cluster))
    assert (err.value.type, err.value.non_retryable) == (K8S_FORBIDDEN, True)
    assert "cannot delete resource" in str(err.value)
