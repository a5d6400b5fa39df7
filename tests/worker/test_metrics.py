"""The worker's Prometheus endpoint (`metrics.address`), scraped over HTTP during a real
incident: Temporal's SDK metrics and the runbook's own, which the workflow records through the
SDK's metric meter. An OOM incident waits for an approval: one pending, since a moment that
makes its age grow; approved, none, and the step's duration is recorded."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contracts.decisions import Decision
from contracts.diagnosis import Scenario
from sandbox.processes import free_port
from tests.conftest import RedisFactory
from tests.harness import (
    auto,
    redis_in_state,
    running_worker,
    settings_for,
    start,
    wait_for_pending,
)
from worker.client import worker_metrics
from worker.settings.runbook import MetricsSettings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: str) -> Samples:
    text = httpx.get(f"http://{address}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


async def test_the_endpoint_shows_a_pending_approval_its_age_and_then_the_step(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    url, _ = redis_in_state(redis_server, Scenario.OUT_OF_MEMORY)
    address = f"127.0.0.1:{free_port()}"
    metrics = worker_metrics(MetricsSettings(address=address))
    assert metrics is not None
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=metrics.runtime,
    )
    settings = settings_for(url, approvals={"required_for": ["set_eviction_policy"]})
    target = {"target": "treebeard-production/redis"}
    async with running_worker(client, settings):
        handle = await start(client, settings, auto(url))
        await wait_for_pending(handle, "set_eviction_policy")
        waiting = scrape(address)
        await asyncio.sleep(1.1)
        later = scrape(address)
        since = value(waiting, "runbook_approval_oldest_pending_timestamp_seconds", **target)
        assert value(waiting, "runbook_approvals_pending", **target) == 1
        assert value(waiting, "runbook_incident_open", **target) == 1
        assert since is not None and 0 < since <= time.time()
        age = value(waiting, "runbook_approval_oldest_pending_age_seconds", **target)
        older = value(later, "runbook_approval_oldest_pending_age_seconds", **target)
        assert age is not None and older is not None and older >= age + 1  # it grows
        decision = {"step": "set_eviction_policy", "approver": "bob", "decision": "approve"}
        await handle.execute_update("decide", Decision.model_validate(decision))
        report = await handle.result()
        done = scrape(address)
    metrics.close()

    assert report.outcome == "resolved", report.escalations
    assert value(done, "runbook_approvals_pending", **target) == 0
    assert value(done, "runbook_approval_oldest_pending_timestamp_seconds", **target) == 0
    assert value(done, "runbook_approval_oldest_pending_age_seconds", **target) == 0
    assert value(done, "runbook_incident_open", **target) == 0
    step = {**target, "step": "set_eviction_policy"}
    assert value(done, "runbook_step_duration_count", **step) == 1
    assert (value(done, "runbook_step_duration_sum", **step) or 0) > 0
    assert value(done, "runbook_steps_total", **step, result="succeeded") == 1
    decided = value(done, "runbook_approval_decisions_total", decision="approve", result="counted")
    assert decided == 1
    finished = {**target, "scenario": "out_of_memory", "outcome": "resolved"}
    assert value(done, "runbook_incidents_finished_total", **finished) == 1
    # The SDK's own: workflow and activity task latencies, on the same endpoint.
    assert any(n.startswith("temporal_workflow_task_schedule_to_start_latency") for n, _ in done)
    assert any(n.startswith("temporal_activity_execution_latency") for n, _ in done)


def test_an_address_must_be_host_and_port() -> None:
    with pytest.raises(ValueError, match="address"):
        MetricsSettings(address="9464")
    assert worker_metrics(MetricsSettings()) is None
