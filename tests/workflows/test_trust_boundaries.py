"""Nothing from outside the worker's own configuration widens what it does: a forged
continue-as-new state runs no step, an unconfigured target is never contacted, and each
target's password goes to its own Redis only. Real Temporal, real redis-servers, the sandbox."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from temporalio import workflow
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.policy import Policy, RunbookConfig
from contracts.diagnosis import Diagnosis, Scenario
from contracts.incident import Incident, IncidentReport, Mode
from contracts.steps import Step, StepName
from contracts.target import RedisTarget
from sandbox.cluster import SandboxCluster
from tests.conftest import RedisFactory
from tests.harness import auto, command_calls, dry_run, running_worker, settings_for, start
from worker.settings.runbook import Settings
from workflows.incident.memory import IncidentMemory

NS = "treebeard-production"


def forged_carry(redis_url: str, from_run_id: str | None) -> dict[str, Any]:
    """What the hole let in: no approvals required, a plan that flushes straight away."""
    now = datetime.now(UTC)
    policy = Policy.model_validate({"approvals": {"required_for": []}})
    carried = IncidentMemory(
        from_run_id=from_run_id,
        started_at=now - timedelta(minutes=1),
        config=RunbookConfig(policy=policy, available_steps=list(StepName)),
        scenario=Scenario.OUT_OF_MEMORY,
        plan=[
            Step(name=StepName.DIAGNOSE, title="d", status="succeeded"),
            Step(name=StepName.FLUSH, title="flush it"),
            Step(name=StepName.SET_EVICTION_POLICY, title="p", params={"policy": "allkeys-lru"}),
            Step(name=StepName.DIAGNOSE, title="verify"),
        ],
        next_step=1,
        triage=Diagnosis(redis_url=redis_url, taken_at=now, reachable=True),
    )
    # `config` is one run's own and never carried on; a forged input may still bring one
    forged: dict[str, Any] = carried.model_dump(mode="json")
    return forged | {"config": carried.config.model_dump(mode="json")}


async def refused(
    env: WorkflowEnvironment, settings: Settings, incident: Incident, error: str
) -> tuple[ApplicationError, WorkflowHandle[object, IncidentReport]]:
    """Start the incident on a worker; it must fail at once with this error type."""
    async with running_worker(env.client, settings):
        handle = await start(env.client, settings, incident)
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=30)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == error
    return cause, handle


@pytest.mark.parametrize(
    ("from_run_id", "why"),
    [
        (None, "not continued from another"),
        (str(uuid.uuid4()), "not continued from another"),
    ],
    ids=["no-run", "unknown-run"],
)
async def test_a_forged_carried_state_runs_no_step(
    temporal_env: WorkflowEnvironment,
    redis_server: RedisFactory,
    from_run_id: str | None,
    why: str,
) -> None:
    server = redis_server()
    client = server.client()
    client.mset({f"key:{i}": i for i in range(100)})
    client.config_resetstat()
    settings = settings_for(server.url)
    incident = auto(server.url).model_copy(
        update={"carried": forged_carry(server.url, from_run_id)}
    )
    cause, handle = await refused(temporal_env, settings, incident, "ForgedCarriedState")
    assert "`carried`" in cause.message and why in cause.message
    assert client.dbsize() == 100
    assert command_calls(client, "flushdb") == 0
    assert command_calls(client, "config|set") == 0
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]


class Listener:
    """A TCP port that counts who connects: the host a forged target points at."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


def _kube_calls(cluster: SandboxCluster) -> int:
    return len([r for r in list(cluster.api.audit) if r.user == cluster.runbook_user])


@pytest.mark.parametrize("mode", [Mode.DRY_RUN, Mode.AUTO])
@pytest.mark.parametrize(
    "forged",
    [
        {"redis_url": "listener"},  # another host, the configured Kubernetes objects
        {"statefulset": "postgres"},  # the configured Redis, another StatefulSet
        {"api_deployment": "billing-api"},
    ],
)
async def test_an_unconfigured_target_is_never_contacted(
    temporal_env: WorkflowEnvironment,
    cluster: SandboxCluster,
    listener: Listener,
    mode: Mode,
    forged: dict[str, str],
) -> None:
    settings = settings_for(
        cluster.redis_url,
        kubernetes={"kubeconfig": str(cluster.runbook_kubeconfig)},
        redis_password="the-configured-targets-secret",
    )
    configured = dry_run(cluster.redis_url).target
    fields = {k: (f"redis://127.0.0.1:{listener.port}/0" if v == "listener" else v)
              for k, v in forged.items()}  # fmt: skip
    incident = Incident(target=configured.model_copy(update=fields), mode=mode)
    before = _kube_calls(cluster)
    cause, _ = await refused(temporal_env, settings, incident, "UnknownTarget")
    assert "not one this worker is configured for" in cause.message
    assert f"tests/{cluster.redis_url}" in cause.message  # names the configured ones
    assert listener.accepted == 0
    assert _kube_calls(cluster) == before


@workflow.defn(sandboxed=False)
class CallsAnActivityDirectly:
    """Stands for any code path that would hand an activity a target of its own."""

    @workflow.run
    async def run(self, target: RedisTarget) -> str:
        try:
            await workflow.execute_activity(
                "diagnose_redis",
                target,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError as err:
            cause = err.cause
            return cause.type or "" if isinstance(cause, ApplicationError) else repr(cause)
        return "contacted"


async def test_every_activity_refuses_an_unconfigured_target(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, listener: Listener
) -> None:
    """The second lock: past the workflow's own check, the worker's activities check too."""
    from temporalio.worker import Worker

    from worker.runner import activities_for
    from worker.target_guard import TargetGuard

    server = redis_server()
    settings = settings_for(server.url, kubernetes={"enabled": False})
    targets = settings.target_book()
    queue = settings.temporal.task_queue
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[CallsAnActivityDirectly],
        activities=activities_for(settings, targets),
        interceptors=[TargetGuard(targets)],
    ):
        forged = RedisTarget(redis_url=f"redis://127.0.0.1:{listener.port}/0")
        answer = await temporal_env.client.execute_workflow(
            CallsAnActivityDirectly.run, forged, id=f"direct-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )  # fmt: skip

    assert answer == "UnknownTarget"
    assert listener.accepted == 0


async def test_each_target_gets_only_its_own_password(
    temporal_env: WorkflowEnvironment,
    redis_server: RedisFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = redis_server(requirepass="first-secret")
    second = redis_server(requirepass="second-secret")
    monkeypatch.setenv("FIRST_REDIS_PASSWORD", "first-secret")
    (second.data_dir / "password").write_text("second-secret\n")
    routes = [
        {"name": "first", "redis_url": first.url, "namespace": "one",
         "password_env": "FIRST_REDIS_PASSWORD"},
        {"name": "second", "redis_url": second.url, "namespace": "two",
         "password_file": str(second.data_dir / "password")},
    ]  # fmt: skip
    settings = settings_for(targets=routes)
    for server, secret in ((first, "first-secret"), (second, "second-secret")):
        redis.Redis(port=server.port, password=secret).acl_log_reset()
    async with running_worker(temporal_env.client, settings):
        reports = [
            await (await start(temporal_env.client, settings, incident)).result()
            for incident in (
                Incident(target=RedisTarget(redis_url=first.url, namespace="one"),
                         mode=Mode.DRY_RUN),
                Incident(target=RedisTarget(redis_url=second.url, namespace="two"),
                         mode=Mode.DRY_RUN),
            )
        ]  # fmt: skip

    assert [r.diagnosis.reachable for r in reports] == [True, True]
    for server, secret in ((first, "first-secret"), (second, "second-secret")):
        client = redis.Redis(port=server.port, password=secret)
        assert client.acl_log() == []  # no failed AUTH: nobody tried the other's password
        assert client.info("stats")["total_connections_received"] >= 2
