"""One way to connect to Temporal, so every client speaks pydantic and carries tracing, and
the worker's runtime that exports metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile
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


def connect_options(settings: TemporalSettings) -> dict[str, Any]:
    """Address, namespace, API key, TLS (client certificate, server CA and name) as the
    profile and the standard environment variables give them, `address` and `namespace`
    from runbook.yaml (or TEMPORAL_ADDRESS/NAMESPACE) over them when set there."""
    source = settings.config_file
    try:
        profile = ClientConfigProfile.load(profile=settings.profile, config_source=source)
        options: dict[str, Any] = dict(profile.to_client_connect_config())
    except (OSError, ValueError, RuntimeError) as err:
        where = f"profile {settings.profile or 'default'} of {source or 'the Temporal config file'}"
        raise TemporalSettingsError(
            f"Temporal client settings ({where}): {err}. Fix: the TLS paths "
            "(client_cert_path, client_key_path, server_ca_cert_path or TEMPORAL_TLS_*) and "
            "the profile's name"
        ) from None
    chosen = settings.model_fields_set
    if "address" in chosen or "target_host" not in options:
        options["target_host"] = settings.address
    if "namespace" in chosen or "namespace" not in options:
        options["namespace"] = settings.namespace
    return options


class TemporalSettingsError(ValueError):
    pass


async def connect(settings: TemporalSettings, runtime: Runtime | None = None) -> Client:
    """`runtime`: the worker's, when it exports metrics (worker_metrics)."""
    return await Client.connect(
        **connect_options(settings),
        data_converter=data_converter(settings),
        interceptors=[tracing_interceptor()],
        runtime=runtime,
    )


def worker_metrics(settings: MetricsSettings) -> WorkerMetrics | None:
    """The runtime and endpoint serving Prometheus metrics on `settings.address`: the SDK's
    own (task latencies, schedule-to-start, slots, sticky cache), what the workflows record
    through its metric meter, and the pending approvals' age. None when unset."""
    return WorkerMetrics(settings.address) if settings.address else None
