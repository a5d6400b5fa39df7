"""Paging through PagerDuty's Events API v2 (a local receiver that checks every event as
PagerDuty does): an escalation level triggers its channel's routing key, later levels update
the same alert (dedup_key: the workflow id), and the incident's good end resolves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from activities.notifications import pagerduty
from contracts.decisions import Decision
from contracts.diagnosis import Scenario
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    redis_in_state,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from tests.pagerduty_receiver import pagerduty_events_api, problems
from workflows.runbook.messages import notification

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"  # 32 characters, like an integration key


def paging_settings(url: str, events_url: str) -> dict[str, Any]:
    levels = [
        {"after": "5m", "notify": ["on-call"], "message": "unresolved after 5 minutes",
         "page": ["pd-oncall"]},
        {"after": "15m", "notify": ["senior DevOps"], "message": "unresolved after 15 minutes",
         "page": ["pd-oncall", "pd-senior"]},
    ]  # fmt: skip
    channels = [
        {"name": "log", "kind": "log"},
        {"name": "pd-oncall", "kind": "pagerduty", "routing_key_env": "PD_ONCALL_KEY",
         "events_url": events_url},
        {"name": "pd-senior", "kind": "pagerduty", "routing_key_env": "PD_SENIOR_KEY",
         "events_url": events_url},
    ]  # fmt: skip
    return {"approvals": {"timeout": "45m"}, "communication": {"escalation": levels},
            "notifications": {"channels": channels}}  # fmt: skip


async def test_an_escalation_pages_and_the_good_end_resolves_the_page(
    time_skipping_env: WorkflowEnvironment,
    redis_server: RedisFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_ONCALL_KEY", KEY)
    monkeypatch.setenv("PD_SENIOR_KEY", KEY.lower())
    url, _ = redis_in_state(redis_server, Scenario.OUT_OF_MEMORY)
    with pagerduty_events_api() as pagerduty:
        settings = settings_for(url, **paging_settings(url, pagerduty.url))
        async with running_worker(time_skipping_env.client, settings):
            handle = await start(time_skipping_env.client, settings, auto(url))
            await wait_for_pending(handle, "set_eviction_policy")
            await time_skipping_env.sleep(timedelta(minutes=6))  # the 5-minute level pages
            decision = Decision.model_validate(
                {"step": "set_eviction_policy", "approver": "bob", "decision": "approve"}
            )
            await handle.execute_update("decide", decision)
            report = await handle.result()

    assert report.outcome == "resolved", report.escalations
    assert pagerduty.refused == []
    actions = [(e["event_action"], e["routing_key"]) for e in pagerduty.events]
    assert actions == [("trigger", KEY), ("resolve", KEY)]  # the senior level never came
    trigger, resolve = pagerduty.events
    assert trigger["dedup_key"] == resolve["dedup_key"] == handle.id
    assert trigger["payload"]["severity"] == "critical"
    assert "unresolved after 5 minutes" in trigger["payload"]["summary"]
    assert trigger["payload"]["custom_details"]["paged"] == ["on-call"]


def test_levels_page_only_paging_channels_that_exist() -> None:
    with pytest.raises(ValidationError, match="'pd-typo', which is not a pagerduty channel"):
        settings_for(communication={"escalation": [
            {"after": "5m", "notify": ["x"], "message": "m", "page": ["pd-typo"]}]})  # fmt: skip
    channels = [{"name": "pd", "kind": "pagerduty", "routing_key_env": "K"}]
    with pytest.raises(ValidationError, match="'pd' is paged by no escalation level"):
        settings_for(notifications={"channels": channels})
    with pytest.raises(ValidationError, match="needs routing_key_env"):
        settings_for(notifications={"channels": [{"name": "pd", "kind": "pagerduty"}]})


def test_an_incident_that_ends_escalated_leaves_its_page_open() -> None:
    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    n = notification(workflow_id="redis-incident-x", kind="final", title="t", started=at, now=at,
                     phase="executing", outcome="escalated", scenario=Scenario.OUT_OF_MEMORY,
                     plan=[], pending=[], alerts=[], severity="high",
                     approval_timeout=timedelta(minutes=15))  # fmt: skip
    body = pagerduty.event(n, KEY)
    assert body["event_action"] == "trigger" and body["dedup_key"] == "redis-incident-x"
    assert body["payload"]["severity"] == "error" and problems(body) == []
    resolved = pagerduty.event(n.model_copy(update={"status": "Resolved"}), KEY)
    assert resolved == {"routing_key": KEY, "event_action": "resolve",
                        "dedup_key": "redis-incident-x"}  # fmt: skip
