"""One way to connect to Temporal, so every client speaks pydantic and carries tracing."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from worker.settings.runbook import TemporalSettings
from worker.telemetry import tracing_interceptor


async def connect(settings: TemporalSettings) -> Client:
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        interceptors=[tracing_interceptor()],
    )
