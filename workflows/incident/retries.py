"""Retry policies per step kind, declared once so every step of a kind behaves the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy

from activities.kubernetes.client import NON_RETRYABLE as KUBERNETES_NON_RETRYABLE
from activities.redis.errors import NON_RETRYABLE as REDIS_NON_RETRYABLE
from contracts.steps import StepName

NON_RETRYABLE = REDIS_NON_RETRYABLE + list(KUBERNETES_NON_RETRYABLE)


@dataclass(frozen=True)
class StepKind:
    retry: RetryPolicy
    timeout: timedelta
    heartbeat: timedelta | None = None


# Probes only read: retry fast and often. An unreachable Redis is a finding, not an error, so a
# probe that still fails after this is the worker's own trouble (bad config, crashed process).
PROBE = StepKind(
    RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=10,
        non_retryable_error_types=NON_RETRYABLE,
    ),
    timeout=timedelta(seconds=30),
)

# Mutations retry a few times with backoff; what retrying cannot fix (a renamed command, bad
# credentials, a setting the server or the policy refuses) fails at once with its type name.
MUTATION = StepKind(
    RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=4,
        non_retryable_error_types=NON_RETRYABLE,
    ),
    timeout=timedelta(seconds=60),
)

# Long mutations (a flush waiting for lazy free) prove they are alive by heartbeating.
LONG_MUTATION = StepKind(
    MUTATION.retry, timeout=timedelta(minutes=5), heartbeat=timedelta(seconds=15)
)

# Reading the worker's own configuration: instant; failing means a broken worker.
CONFIG = StepKind(
    RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=5),
    timeout=timedelta(seconds=10),
)

# Notifications: keep trying a channel that is down, with backoff, within notify_timeout.
NOTIFY = StepKind(
    RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        non_retryable_error_types=["UnknownChannel", "ChannelMisconfigured"],
    ),
    timeout=timedelta(seconds=15),
)

# Recovery runs for minutes (warmers, watching the hit rate) and heartbeats every few seconds
# while it waits (activities/heartbeat.py), so a dead worker's attempt is given up in 15 s.
RECOVERY = StepKind(MUTATION.retry, timeout=timedelta(minutes=20), heartbeat=timedelta(seconds=15))

# Waiting for a rollout: as long as the policy's deadline (passed in), proving life by heartbeat.
WAIT = StepKind(MUTATION.retry, timeout=timedelta(hours=2), heartbeat=timedelta(seconds=10))

KIND_OF: dict[StepName, StepKind] = {
    StepName.DIAGNOSE: PROBE,
    StepName.PING: PROBE,
    StepName.MEMORY_PURGE: MUTATION,
    StepName.FLUSH: LONG_MUTATION,
    StepName.SET_EVICTION_POLICY: MUTATION,
    StepName.RAISE_MAXCLIENTS: MUTATION,
    StepName.TUNE_PERSISTENCE: MUTATION,
    StepName.WARM: RECOVERY,
    StepName.WATCH_HIT_RATE: RECOVERY,
    StepName.WAIT_READY: WAIT,
    StepName.VERIFY_WRITES: PROBE,
    StepName.SENTINEL_FAILOVER: LONG_MUTATION,
    StepName.RESTART_REPLICA: WAIT,
    StepName.VERIFY_CLIENTS: WAIT,
}


def kind_of(step: StepName) -> StepKind:
    return KIND_OF.get(step, MUTATION)
