"""Auto mode on real Redis servers: each path acts, verifies, and no destructive command runs
before the approvals the policy demands (read from Redis's own INFO commandstats)."""

from __future__ import annotations

import time

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.redis.diagnosis import RedisDiagnosisActivities
from activities.redis.hit_rate import HitRateActivities
from activities.redis.remediation import RedisRemediationActivities
from contracts.decisions import Decision
from contracts.incident import IncidentReport
from contracts.steps import StepName
from sandbox import faults
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    command_calls,
    full_evicting_redis,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from tests.sandbox_checks import until


def step(report: IncidentReport, name: StepName) -> str:
    return next(s.status for s in report.steps if s.name is name)


def approval(step_name: str, who: str, decision: str = "approve") -> Decision:
    return Decision.model_validate({"step": step_name, "approver": who, "decision": decision})


async def test_out_of_memory_is_resolved_only_after_approvals(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(maxmemory="4mb", **{"maxmemory-policy": "noeviction"})
    client = server.client()
    keys = faults.fill_memory(client)
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))

        status = await wait_for_pending(handle, "set_eviction_policy")
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert command_calls(client, "config|set") == 0
        assert status.pending_approvals[0].approvals_needed == 1
        answer = await handle.execute_update("decide", approval("set_eviction_policy", "bob"))
        assert "approved" in answer

        report = await handle.result()

    # With an evicting policy the full cache works again: the flush is no longer needed.
    assert report.outcome == "resolved", report.escalations
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    assert 0 < client.dbsize() <= keys
    assert command_calls(client, "flushdb") == 0
    flush = next(s for s in report.steps if s.name.value == "flush")
    assert flush.status == "skipped" and "not needed" in (flush.detail or "")
    assert [(a.step.value, a.approver) for a in report.approvals] == [
        ("set_eviction_policy", "bob")
    ]
    # No config file took the new policy: the report says it lives in memory only.
    assert [t.split(":")[0] for t in report.temporary] == ["set_eviction_policy"]
    assert "maxmemory-policy allkeys-lru" in report.temporary[0]
    assert "## Changes in memory only" in report.review
    assert step(report, StepName.RAISE_MEMORY_LIMIT) == "skipped"
    assert report.analysis.keyspace is not None
    assert report.analysis.keyspace.prefixes[0].prefix == "cache:item"
    assert report.verification is not None and report.verification.info is not None
    assert report.verification.info.maxmemory_policy == "allkeys-lru"  # full, and evicting
    figures = report.figures
    assert figures.time_to_mitigate_s is not None
    assert figures.time_to_resolve_s is not None
    assert 0 < figures.time_to_mitigate_s <= figures.time_to_resolve_s
    assert figures.approval_wait_s > 0
    assert "| flush | skipped | not needed" in report.review
    assert "| time to resolve |" in report.review
    assert "- [ ] Root cause identified" in report.review


async def test_rejected_flush_escalates_and_flushes_nothing(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    client = server.client()
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))
        await wait_for_pending(handle, "flush")
        await handle.signal("reject", {"step": "flush", "approver": "bob", "comment": "no"})
        report = await handle.result()

    assert report.outcome == "escalated"
    assert any("flush was not approved (rejected)" in e for e in report.escalations)
    assert client.dbsize() > 1000  # evictions may trim it, nothing flushed it
    assert command_calls(client, "flushdb") == 0
    assert step(report, StepName.MEMORY_PURGE) == "succeeded"


async def test_too_many_connections_resolved_unattended(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(maxclients="10")
    held = faults.hold_connections(server.port, 9)
    settings = settings_for(server.url, limits={"maxclients_ceiling": 500})
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, auto(server.url))).result()

    assert report.outcome == "resolved", report.escalations
    assert server.client().config_get("maxclients")["maxclients"] == "500"
    assert report.analysis.clients is not None
    assert report.analysis.clients.groups[0].connections == 9
    assert report.approvals == []
    for conn in held:
        conn.close()


async def test_slow_commands_leave_persistence_alone_even_pre_approved(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """Slow commands are the commands' fault: the evidence names them for a person, and a
    persistence change nobody's judgement asks for is not planned, approval or not."""
    server = redis_server(**{"enable-debug-command": "yes", "save": "3600 1"})
    client = server.client()
    faults.slow_commands(client, seconds=0.02)
    client.execute_command("KEYS", "*")  # type: ignore[no-untyped-call]
    settings = settings_for(server.url)
    incident = auto(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(
            temporal_env.client,
            settings,
            incident,
            "pre-approved",
            start_signal="approve",
            start_signal_args=[{"step": "tune_persistence", "approver": "bob"}],
        )
        report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert StepName.TUNE_PERSISTENCE not in [s.name for s in report.steps]
    assert client.config_get("save")["save"] == "3600 1"
    assert client.config_get("stop-writes-on-bgsave-error")["stop-writes-on-bgsave-error"] == "yes"
    refused = [e.message for e in report.timeline if e.kind == "approval_refused"]
    assert any("needs no approval in this incident's plan" in m for m in refused)
    assert report.analysis.slowlog is not None
    advice = {o.advice for o in report.analysis.slowlog.offenders}
    assert "DEBUG commands do not belong in production traffic" in advice


async def test_refused_approvals_change_nothing_and_are_kept(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    client = server.client()
    settings = settings_for(
        server.url, approvals={"approvers": ["alice", "bob"], "four_eyes": True}
    )
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url, "alice"))
        await wait_for_pending(handle, "flush")
        with pytest.raises(WorkflowUpdateFailedError) as stranger:
            await handle.execute_update("decide", approval("flush", "mallory"))
        with pytest.raises(WorkflowUpdateFailedError) as own:
            await handle.execute_update("decide", approval("flush", "alice"))
        await handle.signal("approve", {"step": "flush"})
        assert command_calls(client, "flushdb") == 0
        await handle.execute_update("decide", approval("flush", "bob"))
        with pytest.raises(WorkflowUpdateFailedError) as twice:
            await handle.execute_update("decide", approval("flush", "bob", "reject"))
        report = await handle.result()

    assert "not an approver" in str(stranger.value.cause)
    assert "four eyes" in str(own.value.cause)
    assert "already decided" in str(twice.value.cause)
    refused = [(e.actor, e.message) for e in report.timeline if e.kind == "approval_refused"]
    assert [actor for actor, _ in refused] == ["mallory", "alice", "unknown", "bob"]
    assert "approver: Field required" in refused[2][1]
    assert command_calls(client, "flushdb") == 1
    assert report.outcome == "resolved"


async def test_renamed_flushdb_is_a_clear_finding_not_a_retry_loop(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server, **{"rename-command": 'FLUSHDB ""'})
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))
        await handle.execute_update("decide", approval("flush", "bob"))
        report = await handle.result()

    flush = next(s for s in report.steps if s.name is StepName.FLUSH)
    assert flush.status == "failed"
    assert flush.detail is not None and flush.detail.startswith("CommandUnavailable: FLUSHDB")
    assert report.outcome == "escalated"
    history = await handle.fetch_history()
    failed_attempts = [
        e for e in history.events if e.HasField("activity_task_failed_event_attributes")
    ]
    assert len(failed_attempts) == 1


async def test_approval_racing_the_start_is_honoured_when_the_step_is_reached(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)
    client = server.client()
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(temporal_env.client, settings, auto(server.url))
        answer = await handle.execute_update("decide", approval("flush", "bob"))
        report = await handle.result()

    assert "flush approved (1/1)" in answer
    assert report.outcome == "resolved", report.escalations
    assert command_calls(client, "flushdb") == 1
    kinds = [e.kind for e in report.timeline]
    assert "approval_requested" not in kinds  # decided before the gate opened: no wait at all


async def test_high_latency_from_failing_persistence_runs_its_path(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = redis_server(**{"enable-protected-configs": "yes", "save": "3600 1"})
    client = server.client()
    faults.break_persistence(client)
    settings = settings_for(server.url, approvals={"required_for": []})
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, auto(server.url))).result()

    assert report.scenario.value == "high_latency"
    assert step(report, StepName.TUNE_PERSISTENCE) == "succeeded"
    assert client.config_get("stop-writes-on-bgsave-error")["stop-writes-on-bgsave-error"] == "no"
    # The last save still failed (the disk is still bad): verification says so, a person must act.
    assert report.outcome == "escalated"
    assert report.verification is not None
    assert report.verification.info is not None
    assert report.verification.info.rdb_last_bgsave_status == "err"
    # Snapshots stay paused (back on, the failing save would block writes), and it says so.
    assert client.config_get("save")["save"] == ""
    assert any("persistence is still paused" in p and "'3600 1'" in p for p in report.escalations)


async def test_snapshots_off_stay_off_after_a_latency_incident(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """A pure cache (save ""), with a failing save on record: nothing turns snapshots on."""
    server = redis_server(**{"enable-protected-configs": "yes", "save": ""})
    client = server.client()
    faults.break_persistence(client)
    client.config_resetstat()
    settings = settings_for(server.url, approvals={"required_for": []})
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, auto(server.url))).result()

    assert report.scenario.value == "high_latency"
    assert StepName.TUNE_PERSISTENCE not in [s.name for s in report.steps]
    assert client.config_get("save")["save"] == ""
    assert command_calls(client, "config|set") == 0


async def test_paused_snapshots_come_back_when_the_incident_ends_healthy(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """A slow fork (any fork, with this threshold) pauses snapshots; no fork since, so the
    verification is healthy, and save is put back as it was."""
    server = redis_server(save="3600 1")
    client = server.client()
    client.set("k", "v")
    client.bgsave()
    await until(lambda: client.info("persistence")["rdb_bgsave_in_progress"] == 0, "saved")
    settings = settings_for(
        server.url, approvals={"required_for": []}, thresholds={"fork_ms": 0.0001}
    )
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, auto(server.url))).result()

    assert report.scenario.value == "high_latency" and "fork" in report.reasons[0]
    tuned = [s for s in report.steps if s.name is StepName.TUNE_PERSISTENCE]
    assert [s.status for s in tuned] == ["succeeded", "succeeded"]  # paused, then restored
    assert tuned[0].params == {"save": ""}
    assert tuned[1].title == "Restore persistence as it was before the incident"
    assert client.config_get("save")["save"] == "3600 1"
    assert report.outcome == "resolved", report.escalations


async def test_a_retried_flush_after_the_first_attempt_sent_flushdb_flushes_once(
    redis_server: RedisFactory,
) -> None:
    """The first attempt sent FLUSHDB and died before answering; the retry starts from the
    same baseline (the diagnosis before the step) and sends nothing."""
    server = full_evicting_redis(redis_server)
    client = server.client()
    targets = settings_for(server.url).target_book()
    before = await RedisDiagnosisActivities(targets).diagnose_redis(auto(server.url).target)
    assert before.info is not None and before.info.flushdb_calls == 0
    client.flushdb(asynchronous=True)  # what the lost attempt did
    steps = RedisRemediationActivities(targets)
    retry = await steps.flush(auto(server.url).target, before.info.run_id, 0)
    assert not retry.changed and "already ran" in retry.summary
    assert command_calls(client, "flushdb") == 1
    other_run = await steps.flush(auto(server.url).target, before.info.run_id + "-earlier", 0)
    assert "already ran" not in other_run.summary  # a restarted server: the count is not ours
    assert command_calls(client, "flushdb") == 2


async def test_maxclients_takes_the_most_the_os_allows(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """maxclients 20, 19 connections held, and a file limit that caps Redis far below the
    runbook's 10000: Redis names the most it can take, and that is the raise."""
    server = redis_server.limited(160, maxclients="20")
    held = faults.hold_connections(server.port, 19)
    settings = settings_for(server.url)
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, auto(server.url))).result()
    for conn in held:
        conn.close()

    raised = int(server.client().config_get("maxclients")["maxclients"] or 0)
    assert 20 < raised < 10000
    step = next(s for s in report.steps if s.name is StepName.RAISE_MAXCLIENTS)
    assert step.status == "succeeded" and "the most the OS allows" in (step.detail or "")
    assert report.outcome in ("resolved", "mitigated"), report.escalations


async def test_watching_an_idle_cache_ends_early_and_says_so(redis_server: RedisFactory) -> None:
    server = redis_server()
    watch = HitRateActivities(settings_for(server.url).target_book())
    began = time.monotonic()
    result = await ActivityEnvironment().run(
        watch.watch_hit_rate, auto(server.url).target, 0.6, 0.2, 600.0
    )
    assert time.monotonic() - began < 5
    assert "nothing to watch, ended early" in result.summary and result.after["idle"] == 1


async def test_a_runtime_change_is_written_to_a_writable_config_file(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    """Redis run from a redis.conf it may write: CONFIG REWRITE makes the new maxclients
    survive a restart, and the report lists nothing as lost."""
    server = redis_server.from_config_file(maxclients="10")
    held = faults.hold_connections(server.port, 9)
    settings = settings_for(server.url, limits={"maxclients_target": 500})
    async with running_worker(temporal_env.client, settings):
        report = await (await start(temporal_env.client, settings, auto(server.url))).result()
    for conn in held:
        conn.close()

    assert server.config_file is not None
    assert "maxclients 500" in server.config_file.read_text()
    raised = next(s for s in report.steps if s.name is StepName.RAISE_MAXCLIENTS)
    assert raised.result is not None and "written to" in str(raised.result.after["durable"])
    assert report.temporary == []
