"""One way to connect to Temporal, so every client speaks pydantic and carries tracing, and
the worker's runtime that exports metrics."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from worker.settings.runbook import MetricsSettings, TemporalSettings
from worker.telemetry import tracing_interceptor


async def connect(settings: TemporalSettings, runtime: Runtime | None = None) -> Client:
    """`runtime`: the worker's, when it exports metrics (metrics_runtime)."""
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        interceptors=[tracing_interceptor()],
        runtime=runtime,
    )


def metrics_runtime(settings: MetricsSettings) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on `settings.address`: the SDK's own
    (task latencies, schedule-to-start, slots, sticky cache) and what the workflows record
    through its metric meter (workflows/incident/metrics.py). Durations in seconds, counters
    named `_total` as Prometheus names them."""
    if settings.address is None:
        return None
    config = PrometheusConfig(
        bind_address=settings.address, counters_total_suffix=True, durations_as_seconds=True
    )
    return Runtime(telemetry=TelemetryConfig(metrics=config))
