"""One way to connect to Temporal, so every client speaks pydantic and carries tracing, and
the worker's runtime that exports metrics."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime

from worker.metrics import WorkerMetrics
from worker.payloads.codec import EncryptionCodec, read_key
from worker.settings.runbook import MetricsSettings, TemporalSettings
from worker.telemetry import tracing_interceptor


def data_converter(settings: TemporalSettings) -> DataConverter:
    """Pydantic payloads, sealed by the codec when temporal.codec names keys: the worker,
    the webhook and the CLI all read and write them the same way. Raises CodecError."""
    codec = settings.codec
    if not codec.keys or codec.active is None:
        return pydantic_data_converter
    keys = {kid: read_key(path) for kid, path in codec.keys.items()}
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(keys, codec.active)
    )


async def connect(settings: TemporalSettings, runtime: Runtime | None = None) -> Client:
    """`runtime`: the worker's, when it exports metrics (worker_metrics)."""
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=data_converter(settings),
        interceptors=[tracing_interceptor()],
        runtime=runtime,
    )


def worker_metrics(settings: MetricsSettings) -> WorkerMetrics | None:
    """The runtime and endpoint serving Prometheus metrics on `settings.address`: the SDK's
    own (task latencies, schedule-to-start, slots, sticky cache), what the workflows record
    through its metric meter, and the pending approvals' age. None when unset."""
    return WorkerMetrics(settings.address) if settings.address else None
