"""Tracing: spans for every workflow and activity, exported over OTLP only when asked to."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.contrib.opentelemetry import TracingInterceptor


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Install an OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise export
    nothing (the interceptor still propagates trace context between client and worker)."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def tracing_interceptor() -> TracingInterceptor:
    return TracingInterceptor()
