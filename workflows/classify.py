"""Which runbook path applies: a pure function of the diagnosis and the thresholds.

Precedence, first match wins (the order a person would act in):
  1. redis_down            - Redis cannot be reached or is still loading its dataset
  2. out_of_memory         - used_memory >= memory_ratio of maxmemory, or keys being evicted
                             faster than evictions_per_minute (or evicted while we sampled)
  3. too_many_connections  - connected_clients >= clients_ratio of maxclients, rejected
                             connections, or our own connection refused for max clients
  4. slow_commands         - slowlog_entries or more SLOWLOG entries slower than slowlog_ms
                             within slowlog_window
  5. high_latency          - ping p95 above ping_p95_ms, or persistence blocking writes (last
                             bgsave or AOF write failed, or a fork slower than fork_ms)
  6. healthy
"""

from __future__ import annotations

from collections.abc import Callable

from activities.models import Diagnosis, Scenario
from activities.policy import Thresholds

Rule = Callable[[Diagnosis, Thresholds], str | None]


def _down(d: Diagnosis, t: Thresholds) -> str | None:
    if d.has("max_clients_reached"):
        return None
    if not d.reachable:
        return "; ".join(f.message for f in d.findings) or "Redis is unreachable"
    return None


def _out_of_memory(d: Diagnosis, t: Thresholds) -> str | None:
    info = d.info
    if info is None:
        return None
    ratio = info.memory_ratio
    if ratio is not None and ratio >= t.memory_ratio:
        return f"memory at {ratio:.0%} of maxmemory (threshold {t.memory_ratio:.0%})"
    if d.evictions_during_sample > 0:
        return f"{d.evictions_during_sample} keys evicted while sampling: evictions are climbing"
    minutes = info.uptime_seconds / 60
    if minutes >= 1 and info.evicted_keys / minutes >= t.evictions_per_minute:
        rate = info.evicted_keys / minutes
        return f"{rate:.0f} evictions/min on average (threshold {t.evictions_per_minute:.0f})"
    return None


def _too_many_connections(d: Diagnosis, t: Thresholds) -> str | None:
    if d.has("max_clients_reached"):
        return "Redis refused the worker's own connection: max number of clients reached"
    info = d.info
    if info is None:
        return None
    ratio = info.clients_ratio
    if ratio is not None and ratio >= t.clients_ratio:
        return (
            f"{info.connected_clients} of {info.maxclients} clients connected "
            f"({ratio:.0%}, threshold {t.clients_ratio:.0%})"
        )
    if info.rejected_connections >= t.rejected_connections:
        return f"{info.rejected_connections} connections rejected since start"
    return None


def _slow_commands(d: Diagnosis, t: Thresholds) -> str | None:
    since = d.taken_at - t.slowlog_window
    slow = [e for e in d.slowlog if e.duration_us >= t.slowlog_ms * 1000 and e.started_at >= since]
    if len(slow) < t.slowlog_entries:
        return None
    worst = max(slow, key=lambda e: e.duration_us)
    return (
        f"{len(slow)} commands slower than {t.slowlog_ms:g} ms in the last "
        f"{t.slowlog_window}; worst {worst.duration_us / 1000:.1f} ms: {worst.command}"
    )


def _high_latency(d: Diagnosis, t: Thresholds) -> str | None:
    if d.ping_p95_ms is not None and d.ping_p95_ms > t.ping_p95_ms:
        return f"ping p95 {d.ping_p95_ms:.1f} ms (threshold {t.ping_p95_ms:g} ms)"
    info = d.info
    if info is None:
        return None
    if info.rdb_last_bgsave_status != "ok":
        return "last RDB save failed: writes may be blocked (stop-writes-on-bgsave-error)"
    if info.aof_last_write_status != "ok":
        return "last AOF write failed: persistence is blocking writes"
    if info.latest_fork_usec / 1000 > t.fork_ms:
        return f"last fork took {info.latest_fork_usec / 1000:.0f} ms (threshold {t.fork_ms:g})"
    return None


RULES: list[tuple[Scenario, Rule]] = [
    (Scenario.REDIS_DOWN, _down),
    (Scenario.OUT_OF_MEMORY, _out_of_memory),
    (Scenario.TOO_MANY_CONNECTIONS, _too_many_connections),
    (Scenario.SLOW_COMMANDS, _slow_commands),
    (Scenario.HIGH_LATENCY, _high_latency),
]


def explain(diagnosis: Diagnosis, thresholds: Thresholds) -> list[tuple[Scenario, str]]:
    """Every rule that fires, in precedence order: the first decides, the rest are context."""
    fired = []
    for scenario, rule in RULES:
        reason = rule(diagnosis, thresholds)
        if reason:
            fired.append((scenario, reason))
    return fired


def classify(diagnosis: Diagnosis, thresholds: Thresholds | None = None) -> Scenario:
    fired = explain(diagnosis, thresholds or Thresholds())
    return fired[0][0] if fired else Scenario.HEALTHY
