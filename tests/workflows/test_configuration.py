"""The runbook's "check the ConfigMap" and "check if data persisted", on the sandbox: the
ConfigMap Redis starts from (with the container's args over it) against the live CONFIG."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from contracts.diagnosis import Diagnosis
from contracts.steps import Step, StepName
from sandbox.cluster import SandboxCluster
from tests.harness import dry_run, running_worker, settings_for, start, target_route
from workflows.runbook.drift import data_after_restart


async def test_a_hand_made_config_change_is_drift_in_the_review(
    temporal_env: WorkflowEnvironment, cluster: SandboxCluster
) -> None:
    route = target_route(cluster.redis_url, workload={"config_map": "redis-config"})
    settings = settings_for(
        targets=[route], kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)}
    )

    async def review() -> str:
        async with running_worker(temporal_env.client, settings):
            handle = await start(temporal_env.client, settings, dry_run(cluster.redis_url))
            return (await handle.result()).review

    assert "the live settings match configmap redis-config (redis.conf)" in await review()
    with cluster.redis() as conn:  # someone fixed it by hand, and nothing made it durable
        await asyncio.to_thread(conn.config_set, "maxmemory-policy", "allkeys-lru")
    drifted = await review()
    assert "## Configuration drift" in drifted
    assert "maxmemory-policy: configmap redis-config (redis.conf) and the container's args " \
        "says 'noeviction', Redis runs 'allkeys-lru'" in drifted  # fmt: skip
    assert "maxmemory:" not in drifted  # 24mb in the file is the live 25165824 bytes


def test_the_keys_before_and_after_a_restart_say_whether_data_persisted() -> None:
    def seen(keys: int | None) -> Diagnosis:
        at = "2026-12-01T00:00:00Z"
        fields = {"redis_url": "redis://r:6379/0", "reachable": True, "taken_at": at}
        return Diagnosis.model_validate({**fields, "dbsize": keys})

    restart = Step(name=StepName.RESTART, title="restart", status="succeeded")
    assert data_after_restart(seen(100), seen(100), [restart]) == (
        "data persisted: 100 keys before the restart, 100 after"
    )
    assert "data lost: 100 keys before the restart, 0 after" in str(
        data_after_restart(seen(100), seen(0), [restart])
    )
    assert data_after_restart(seen(100), seen(0), []) is None  # no restart, nothing to say
