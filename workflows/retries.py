"""Retry policies per step kind, declared once so every step of a kind behaves the same."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Probes only read: retry fast and often. Unreachable Redis is a finding, not an error, so a
# probe that still fails after this is the worker's own trouble (bad config, crashed process).
PROBE = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
)
PROBE_TIMEOUT = timedelta(seconds=30)

# Reading the worker's own configuration: local, instant; failing means a broken worker.
CONFIG = RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=5)
CONFIG_TIMEOUT = timedelta(seconds=10)
