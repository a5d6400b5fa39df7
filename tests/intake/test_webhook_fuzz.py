"""Fuzz every operation from the app's own OpenAPI schema (schemathesis), over real HTTP, with
a catch-all target so valid-looking alerts really reach the Temporal dev server: whatever
arrives, the answer is never a 5xx. Bounded to a few examples per operation so it runs in
seconds."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from temporalio.testing import WorkflowEnvironment

from tests.intake.test_webhook_helpers import TOKEN, namespace, serve, webhook_settings
from worker.webhook import create_app

MAX_EXAMPLES = 15


def test_fuzzed_requests_never_get_a_server_error(temporal_env: WorkflowEnvironment) -> None:
    ns = namespace()
    catch_all = {
        "name": "catch-all",
        "match": {},
        "redis_url": "redis://127.0.0.1:1/0",
        "namespace": ns,
    }
    # A generous Temporal deadline: a 503 here must mean a bug, not a dev server busy with the
    # rest of the suite.
    config = webhook_settings(temporal_env, [catch_all], webhook={"temporal_timeout": "30s"})
    app = create_app(config)
    with serve(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operations.append(result.ok())
        assert len(operations) >= 7
        seen: set[int] = set()
        for operation in operations:
            modes = [GenerationMode.POSITIVE]
            if operation.method.upper() == "POST":  # nothing to break in a bare GET
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                strategy = operation.as_strategy(generation_mode=mode)

                @settings(
                    max_examples=MAX_EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,  # the same examples on every run: no flaky CI
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy, authenticated=st.booleans())
                def call(case: Case[Any], authenticated: bool) -> None:
                    headers = {"Authorization": f"Bearer {TOKEN}"} if authenticated else {}
                    response = case.call_and_validate(
                        base_url=url, headers=headers, checks=[not_a_server_error], timeout=10
                    )
                    seen.add(response.status_code)

                call()
    assert {200, 401, 422} <= seen, seen
    registry = app.state.webhook.metrics.registry
    started = sum(
        registry.get_sample_value(
            "runbook_webhook_alerts_total", {"source": source, "action": "started"}
        )
        or 0
        for source in ("alertmanager", "grafana", "pagerduty", "generic")
    )
    assert started == 1, "fuzzed alerts must reach Temporal, all in the one catch-all incident"
