"""`runbook worker` and `runbook start` as a person runs them, against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from sandbox import faults
from sandbox.processes import stop_process
from tests.conftest import RedisFactory
from tests.harness import command_calls, full_evicting_redis, wait_for_pending

RUNBOOK = str(Path(sys.executable).parent / "runbook")


@pytest.fixture
def cli_env(temporal_env: WorkflowEnvironment, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RUNBOOK_CONFIG", None)
    env["RUNBOOK_RECOVERY__WATCH_DEADLINE"] = "1s"
    env["TEMPORAL_ADDRESS"] = temporal_env.client.service_client.config.target_host
    env["RUNBOOK_TEMPORAL__TASK_QUEUE"] = f"cli-{uuid.uuid4().hex[:8]}"
    env["RUNBOOK_USER"] = "oncall-alice"
    return env


Spawn = Callable[[], subprocess.Popen[bytes]]


def configure(env: dict[str, str], redis_url: str, namespace: str = "default") -> None:
    """Add a target to the runbook.yaml the CLI and the worker read (here as the environment's
    RUNBOOK_TARGETS): the worker acts on configured targets only."""
    targets = json.loads(env.get("RUNBOOK_TARGETS", "[]"))
    targets.append({"name": f"{namespace}/{redis_url}", "redis_url": redis_url,
                    "namespace": namespace})  # fmt: skip
    env["RUNBOOK_TARGETS"] = json.dumps(targets)


@pytest.fixture
def spawn_worker(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Spawn]:
    """`runbook worker` started once the test has configured its targets."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        log = (tmp_path / "worker.log").open("wb")
        started.append(subprocess.Popen([RUNBOOK, "worker"], env=cli_env, stdout=log, stderr=log))
        return started[-1]

    yield spawn
    for proc in started:
        stop_process(proc)
        assert proc.returncode == 0, (tmp_path / "worker.log").read_text()


def runbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNBOOK, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def _workflows_on(env: WorkflowEnvironment, queue: str) -> int:
    return len([w async for w in env.client.list_workflows(f"TaskQueue='{queue}'")])


def test_start_dry_run_waits_and_prints_the_plan(
    cli_env: dict[str, str],
    spawn_worker: Spawn,
    redis_server: RedisFactory,
) -> None:
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    faults.fill_memory(server.client())
    configure(cli_env, server.url)
    spawn_worker()

    done = runbook(cli_env, "start", "--redis-url", server.url, "--dry-run", "--wait")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "started workflow redis-cache-failure/default/redis/dry-run-" in out
    assert "scenario: out_of_memory" in out and "outcome: planned" in out
    assert "flush" in out and "needs 1 approval(s)" in out
    assert "memory at" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", '{"target": {"redis_url": "http://r:6379/0"}}'], "scheme must be redis://"),
        (
            ["--input", '{"target": {"redis_url": "redis://:pw@r:6379/0"}}'],
            "RUNBOOK_REDIS_PASSWORD",
        ),
        (["--input", '{"target": {"redis_url": "redis://r/0"}, "urgency": 1}'], "urgency"),
        (["--input", '{"target": {"redis_url": "redis://r/0"}, "carried": {}}'], "`carried`"),
        (["--input", '{"target": {"redis_url": "redis://r/0"}}'], "not one this worker is"),
        (["--redis-url", "redis://r:6379/0", "--dry-run"], "no target with redis_url"),
        (["--input", "{not json"], "not JSON"),
        (["--target", "nowhere", "--dry-run"], "no target named 'nowhere'"),
    ],
)
async def test_bad_input_is_refused_and_starts_nothing(
    temporal_env: WorkflowEnvironment, cli_env: dict[str, str], args: list[str], message: str
) -> None:
    done = runbook(cli_env, "start", *args)

    assert done.returncode == 2
    assert message in done.stderr
    assert await _workflows_on(temporal_env, cli_env["RUNBOOK_TEMPORAL__TASK_QUEUE"]) == 0


async def test_bad_config_file_is_refused_and_starts_nothing(
    temporal_env: WorkflowEnvironment, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "runbook.yaml"
    config.write_text("approvals:\n  four_eyes: perhaps\n")
    cli_env["RUNBOOK_CONFIG"] = str(config)

    done = runbook(cli_env, "start", "--redis-url", "redis://r:6379/0", "--dry-run")
    worker = runbook(cli_env, "worker")

    for result in (done, worker):
        assert result.returncode == 2
        assert f"{config}:2: approvals.four_eyes" in result.stderr
    assert await _workflows_on(temporal_env, cli_env["RUNBOOK_TEMPORAL__TASK_QUEUE"]) == 0


def test_unreachable_temporal_is_a_clear_error(cli_env: dict[str, str]) -> None:
    cli_env["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    configure(cli_env, "redis://r:6379/0")
    done = runbook(cli_env, "start", "--redis-url", "redis://r:6379/0", "--dry-run")
    assert done.returncode == 2
    assert "cannot reach Temporal at 127.0.0.1:1" in done.stderr


async def test_status_approve_and_list_drive_an_incident(
    temporal_env: WorkflowEnvironment,
    cli_env: dict[str, str],
    redis_server: RedisFactory,
    tmp_path: Path,
) -> None:
    server = full_evicting_redis(redis_server)
    client = server.client()
    cli_env["RUNBOOK_APPROVALS__APPROVERS"] = '["bob"]'
    namespace = f"cli-{uuid.uuid4().hex[:6]}"
    configure(cli_env, server.url, namespace)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([RUNBOOK, "worker"], env=cli_env, stdout=log, stderr=log)  # noqa: ASYNC220
    try:
        started = runbook(cli_env, "start", "--redis-url", server.url, "--namespace", namespace)
        assert started.returncode == 0, started.stderr
        workflow_id = f"redis-cache-failure/{namespace}/redis"
        assert workflow_id in started.stdout
        handle = temporal_env.client.get_workflow_handle(workflow_id)
        await wait_for_pending(handle, "flush")

        status = runbook(cli_env, "status", workflow_id)
        assert "Waiting for approval: flush" in status.stdout
        assert f"runbook approve {workflow_id} flush --as YOUR-NAME" in status.stdout
        assert "--name decide" in status.stdout
        listed = runbook(cli_env, "list")
        assert workflow_id in listed.stdout

        refused = runbook(cli_env, "approve", workflow_id, "flush", "--as", "mallory")
        assert refused.returncode == 1
        assert "refused: mallory is not an approver" in refused.stderr
        assert command_calls(client, "flushdb") == 0
        assert "Refused: mallory" in runbook(cli_env, "status", workflow_id).stdout

        approved = runbook(cli_env, "approve", workflow_id, "flush", "--as", "bob")
        assert approved.returncode == 0, approved.stderr
        assert "flush approved (1/1)" in approved.stdout
        report = await handle.result()
    finally:
        stop_process(worker)

    assert report["outcome"] == "resolved"
    assert command_calls(client, "flushdb") == 1
    review = runbook(cli_env, "report", workflow_id)
    assert review.returncode == 0, review.stderr
    assert review.stdout.startswith(f"# Post-incident review: {workflow_id}")
    assert "**Outcome:** resolved" in review.stdout
    assert "| approval | bob | flush approved (1/1) |" in review.stdout
    missing = runbook(cli_env, "status", "redis-cache-failure/nope/redis")
    assert missing.returncode == 2
    assert "no incident" in missing.stderr


async def test_status_follow_ends_with_the_incident(
    temporal_env: WorkflowEnvironment,
    cli_env: dict[str, str],
    spawn_worker: Spawn,
    redis_server: RedisFactory,
) -> None:
    server = full_evicting_redis(redis_server)
    namespace = f"follow-{uuid.uuid4().hex[:6]}"
    configure(cli_env, server.url, namespace)
    spawn_worker()
    started = runbook(cli_env, "start", "--redis-url", server.url, "--namespace", namespace)
    assert started.returncode == 0, started.stderr
    workflow_id = f"redis-cache-failure/{namespace}/redis"
    await wait_for_pending(temporal_env.client.get_workflow_handle(workflow_id), "flush")
    follower = await asyncio.create_subprocess_exec(
        RUNBOOK, "status", workflow_id, "--follow", env=cli_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(1.5)
    approved = runbook(cli_env, "approve", workflow_id, "flush", "--as", "bob")
    assert approved.returncode == 0, approved.stderr
    out, err = await asyncio.wait_for(follower.communicate(), timeout=60)

    assert follower.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert "phase executing: flush pending_approval" in lines[0]
    assert any(line.startswith("phase done") for line in lines)
    assert "Incident " + workflow_id in out.decode()  # the final status is printed


def json_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object a --json command prints on stdout, whatever its exit code."""
    data = json.loads(done.stdout)
    assert isinstance(data, dict), done.stdout
    return data


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["start", "--redis-url", "http://r:6379/0", "--dry-run"], 2, "no target with redis_url"),
        (["status", "redis-cache-failure/nope/redis"], 2, "no incident"),
        (["report", "redis-cache-failure/nope/redis"], 2, "no incident"),
        (["approve", "redis-cache-failure/nope/redis", "flush", "--as", "bob"], 2, "no incident"),
        (["reject", "redis-cache-failure/nope/redis", "nothing", "--as", "bob"], 2, "unknown step"),
        (["approve", "redis-cache-failure/nope/redis", "flush"], 2, "--as NAME"),
        (["abort", "redis-cache-failure/nope/redis", "--as", "bob"], 2, "no incident"),
        (["abort", "redis-cache-failure/nope/redis"], 2, "--as NAME"),
        (["approve"], 2, "the following arguments are required"),
        (["list", "--all", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ],
)
def test_errors_are_json_with_json(
    cli_env: dict[str, str], args: list[str], code: int, message: str
) -> None:
    cli_env.pop("RUNBOOK_USER")
    done = runbook(cli_env, *args, "--json")

    assert done.returncode == code, done.stdout + done.stderr
    answer = json_of(done)
    assert message in answer["error"]
    assert answer["exit_code"] == code
    assert message not in done.stderr  # one stream for scripts: the JSON


def test_unreachable_temporal_is_a_json_error(cli_env: dict[str, str]) -> None:
    cli_env["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    for command in (["list"], ["status", "x"], ["approve", "x", "flush"], ["abort", "x"]):
        done = runbook(cli_env, *command, "--json")
        assert done.returncode == 2
        assert "cannot reach Temporal at 127.0.0.1:1" in json_of(done)["error"]


def test_start_json_is_one_object_with_the_report(
    cli_env: dict[str, str], spawn_worker: Spawn, redis_server: RedisFactory
) -> None:
    server = redis_server()
    configure(cli_env, server.url)
    spawn_worker()
    started = runbook(cli_env, "start", "--redis-url", server.url, "--dry-run", "--json")
    waited = runbook(cli_env, "start", "--redis-url", server.url, "--dry-run", "--wait", "--json")

    assert started.returncode == 0, started.stderr
    assert json_of(started)["workflow_id"].startswith("redis-cache-failure/default/redis/dry-run")
    assert json_of(started)["mode"] == "dry-run"
    assert waited.returncode == 0, waited.stderr
    answer = json_of(waited)
    assert answer["run_id"] and answer["mode"] == "dry-run"
    assert answer["report"]["workflow_id"] == answer["workflow_id"]
    assert answer["report"]["outcome"] == "planned"
    assert answer["report"]["scenario"] == "healthy"


async def test_approve_reject_list_json_while_an_incident_waits(
    temporal_env: WorkflowEnvironment,
    cli_env: dict[str, str],
    redis_server: RedisFactory,
    tmp_path: Path,
) -> None:
    server = full_evicting_redis(redis_server)
    cli_env["RUNBOOK_APPROVALS__APPROVERS"] = '["bob"]'
    namespace = f"json-{uuid.uuid4().hex[:6]}"
    configure(cli_env, server.url, namespace)
    workflow_id = f"redis-cache-failure/{namespace}/redis"
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([RUNBOOK, "worker"], env=cli_env, stdout=log, stderr=log)  # noqa: ASYNC220
    try:
        started = runbook(cli_env, "start", "--redis-url", server.url, "--namespace", namespace)
        assert started.returncode == 0, started.stderr
        handle = temporal_env.client.get_workflow_handle(workflow_id)
        await wait_for_pending(handle, "flush")

        listed = json_of(runbook(cli_env, "list", "--json"))
        assert workflow_id in [row["workflow_id"] for row in listed["incidents"]]
        status = json_of(runbook(cli_env, "status", workflow_id, "--json"))
        assert [p["step"] for p in status["pending_approvals"]] == ["flush"]

        refused = runbook(cli_env, "reject", workflow_id, "flush", "--as", "mallory", "--json")
        assert refused.returncode == 1
        answer = json_of(refused)
        assert answer["accepted"] is False and answer["decision"] == "reject"
        assert answer["error"].startswith("refused: mallory is not an approver")
        assert (answer["workflow_id"], answer["step"], answer["approver"]) == (
            workflow_id, "flush", "mallory"
        )  # fmt: skip

        follower = await asyncio.create_subprocess_exec(
            RUNBOOK, "status", workflow_id, "--follow", "--json", env=cli_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        approved = runbook(cli_env, "approve", workflow_id, "flush", "--as", "bob", "--json")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        answer = json_of(approved)
        assert answer["accepted"] is True and answer["verdict"] == "flush approved (1/1)"
        assert (await handle.result())["outcome"] == "resolved"
        out, err = await asyncio.wait_for(follower.communicate(), timeout=60)
        assert follower.returncode == 0, err.decode()
        assert json.loads(out)["phase"] == "done"  # the live view went to stderr
        assert "phase done" in err.decode()
    finally:
        stop_process(worker)
    assert json_of(runbook(cli_env, "report", workflow_id, "--json"))["outcome"] == "resolved"


async def test_abort_stops_an_incident_and_says_whether_it_took(
    temporal_env: WorkflowEnvironment,
    cli_env: dict[str, str],
    spawn_worker: Spawn,
    redis_server: RedisFactory,
) -> None:
    server = full_evicting_redis(redis_server)
    namespace = f"abort-{uuid.uuid4().hex[:6]}"
    configure(cli_env, server.url, namespace)
    spawn_worker()
    workflow_id = f"redis-cache-failure/{namespace}/redis"
    started = runbook(cli_env, "start", "--redis-url", server.url, "--namespace", namespace)
    assert started.returncode == 0, started.stderr
    handle = temporal_env.client.get_workflow_handle(workflow_id)
    await wait_for_pending(handle, "flush")

    aborted = runbook(cli_env, "abort", workflow_id, "--reason", "taking over", "--json")
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    answer = json_of(aborted)
    assert answer["accepted"] is True and answer["by"] == "oncall-alice"
    assert answer["restore_api"] is True
    assert "taking over" in answer["message"]
    report = await handle.result()
    assert report["outcome"] == "aborted"
    assert command_calls(server.client(), "flushdb") == 0

    again = runbook(cli_env, "abort", workflow_id, "--as", "bob")
    assert again.returncode == 1
    assert "refused: the incident has ended" in again.stderr
