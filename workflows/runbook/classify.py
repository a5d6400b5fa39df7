"""Which runbook path applies: a pure function of the diagnosis and the thresholds.

Precedence, first match wins (the order a person would act in):
  0. unreachable_from_runbook - only the worker cannot reach Redis: Kubernetes calls its pods
                             Ready with ready endpoints, whatever an alert says (a DNS, TLS,
                             credential, port or NetworkPolicy problem on the worker's side)
  1. redis_down            - Redis cannot be reached or is still loading its dataset (the
                             Kubernetes problem, e.g. CrashLoopBackOff or an unbound PVC, is
                             named in the reason)
  2. out_of_memory         - as a person judges it: writes refused with OOM while full, a
                             full Redis whose policy can evict nothing (noeviction, or volatile
                             with no key holding a TTL), evictions faster than
                             evictions_per_minute while the hit rate is below target, or an
                             OOMKilled within oom_window (an OOMKilled crash loop too). A full
                             cache evicting as designed with its hit rate fine is healthy.
  3. too_many_connections  - connected_clients >= clients_ratio of maxclients, rejected
                             connections, or our own connection refused for max clients
  4. slow_commands         - slowlog_entries or more SLOWLOG entries slower than slowlog_ms
                             within slowlog_window
  5. high_latency          - ping p95 above ping_p95_ms, or persistence blocking writes (last
                             bgsave or AOF write failed, or a fork slower than fork_ms)
  6. healthy

Redis counters (evicted_keys, rejected_connections) and the SLOWLOG only ever grow. Given
`since`, an earlier diagnosis of the same server, only what happened after it counts: that is
how verification after a fix tells "fixed" from "it happened once an hour ago".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from activities.policy import Thresholds
from contracts.diagnosis import Diagnosis, RedisInfo, Scenario, SlowlogEntry
from contracts.kubernetes import KubeProblem, KubernetesFacts, PodFacts
from workflows.runbook import group

# What the worker's own failure to connect most likely means, by the diagnosis' finding.
VANTAGE_HINTS = {
    "dns_failure": "DNS: the worker cannot resolve the Redis host",
    "tls_error": "TLS: the worker's CA or client certificate, or the server's certificate",
    "auth_failed": "credentials: the worker's password or ACL user for this target",
    "connection_refused": "a wrong port in the target's URL, or a NetworkPolicy rejecting "
    "the worker",
    "timeout": "a NetworkPolicy dropping the worker's traffic, or the network in between",
}


def kubernetes_says_ready(kube: KubernetesFacts | None) -> bool:
    """Every pod Ready, no problem found, and the Service has ready endpoints."""
    return (
        kube is not None
        and kube.reachable
        and kube.problem is KubeProblem.NONE
        and bool(kube.pods)
        and all(p.ready for p in kube.pods)
        and (kube.ready_endpoints is None or kube.ready_endpoints > 0)
    )


def stuck_pod(kube: KubernetesFacts) -> PodFacts | None:
    """The pod a force delete is for: stuck terminating, else crash-looping, else not Ready.
    None when every pod is Ready: a healthy pod is never force-deleted."""
    for stuck in (
        lambda p: p.terminating,
        lambda p: p.waiting_reason == "CrashLoopBackOff",
        lambda p: not p.ready,
    ):
        found = next((p for p in kube.pods if stuck(p)), None)
        if found is not None:
            return found
    return None


def kubernetes_says_down(kube: KubernetesFacts | None) -> bool:
    """Kubernetes was seen, and it does not call Redis Ready."""
    return kube is not None and kube.reachable and not kubernetes_says_ready(kube)


@dataclass(frozen=True)
class Context:
    d: Diagnosis
    t: Thresholds
    since: Diagnosis | None = None
    alerts: tuple[str, ...] = ()  # names of the alerts firing in this incident
    legacy: bool = False  # the rules as they were, for histories recorded before them

    def monitoring_says_down(self) -> bool:
        return any(name in self.t.down_alerts for name in self.alerts)

    def earlier(self) -> RedisInfo | None:
        """The baseline INFO, when it is the same server run (counters reset on restart)."""
        info, before = self.d.info, self.since.info if self.since else None
        if info is None or before is None or info.uptime_seconds < before.uptime_seconds:
            return None
        return before

    def minutes(self) -> float:
        if self.earlier() is not None and self.since is not None:
            return max((self.d.taken_at - self.since.taken_at).total_seconds() / 60, 1 / 60)
        return (self.d.info.uptime_seconds if self.d.info else 0) / 60

    def grown(self, counter: str) -> int:
        now = getattr(self.d.info, counter, 0) if self.d.info else 0
        before = self.earlier()
        return int(now - getattr(before, counter)) if before is not None else int(now)

    def new_slowlog(self) -> list[SlowlogEntry]:
        seen = {e.id for e in self.since.slowlog} if self.earlier() and self.since else set()
        return [e for e in self.d.slowlog if e.id not in seen]


Rule = Callable[[Context], str | None]


def down_corroborated(c: Context) -> bool:
    """A second vantage point agrees Redis is down: Kubernetes, or (where Kubernetes gives no
    view) an alert of the incident. Without one, the worker's own view alone never restarts
    anything unattended."""
    return c.legacy or kubernetes_says_down(c.d.kubernetes) or c.monitoring_says_down()


def _unreachable_from_runbook(c: Context) -> str | None:
    d = c.d
    if c.legacy or d.reachable or d.has("max_clients_reached") or d.has("loading"):
        return None
    if d.replication is not None:
        return group.unreachable_from_runbook(d, down_corroborated(c))
    # An alert does not outweigh Kubernetes calling Redis Ready: anyone who can start or
    # signal the workflow can write one. It corroborates only where Kubernetes has no view.
    if not kubernetes_says_ready(d.kubernetes):
        return None
    kube = d.kubernetes
    assert kube is not None
    first = d.findings[0] if d.findings else None
    hint = VANTAGE_HINTS.get(first.code if first else "", "the network between worker and Redis")
    return (
        f"only the runbook cannot reach Redis ({first.message if first else 'no answer'}); "
        f"Kubernetes calls it Ready ({len(kube.pods)} pods ready, "
        f"{kube.ready_endpoints if kube.ready_endpoints is not None else '?'} ready endpoints). "
        f"Likely cause: {hint}"
    )


def _down(c: Context) -> str | None:
    if c.d.has("max_clients_reached") or c.d.reachable or c.d.replication is not None:
        return None  # a Sentinel-managed group's master down is Sentinel's to move first
    kube = c.d.kubernetes
    if not c.legacy and kube is not None and kube.oom_killed and kube.crash_looping:
        return None  # an OOMKilled crash loop: the memory limit, not another restart
    reason = "; ".join(f.message for f in c.d.findings) or "Redis is unreachable"
    if not down_corroborated(c):
        reason += " (only as the runbook sees it: no Kubernetes view of it, no alert says so)"
    kube = c.d.kubernetes
    if kube is not None and kube.problem.value not in ("none", "kubernetes_unavailable"):
        reason += f" (Kubernetes: {kube.problem.value.replace('_', ' ')})"
    return reason


def _application_cut_off(c: Context) -> str | None:
    """Redis answers, and Kubernetes' own policy keeps the API from it: a restart would cure
    nothing, so this outranks every Redis symptom and leaves the fix to a person."""
    kube = c.d.kubernetes
    if c.legacy or not c.d.reachable or kube is None or not kube.network_blocked_by:
        return None
    cut = next((f.message for f in kube.findings if f.code == "api_cut_off"), None)
    return (cut or f"NetworkPolicy {', '.join(kube.network_blocked_by)} shuts the API out") + (
        "; Redis itself answers the runbook: restarting it would change nothing"
    )


def can_evict(info: RedisInfo) -> bool:
    """Whether the policy has anything to evict when Redis is full."""
    policy = info.maxmemory_policy
    return policy.startswith("allkeys-") or (policy.startswith("volatile-") and info.expires > 0)


def _out_of_memory(c: Context) -> str | None:
    if c.legacy:
        return _out_of_memory_before_judgement(c)
    info, t, kube = c.d.info, c.t, c.d.kubernetes
    if kube is not None and kube.oom_killed:
        return f"the Redis container was OOMKilled (memory limit {kube.memory_limit or 'unknown'})"
    if info is None:
        return None
    ratio = info.memory_ratio
    full = ratio is not None and ratio >= t.memory_ratio
    refused = c.grown("oom_errors")
    if full and refused:
        return f"memory at {ratio:.0%} of maxmemory and {refused} writes refused with OOM"
    if full and not can_evict(info):
        return (
            f"memory at {ratio:.0%} of maxmemory with maxmemory-policy "
            f"{info.maxmemory_policy or 'unknown'}, which has nothing to evict: writes fail"
        )
    return _evicting_and_missing(c)


def _evicting_and_missing(c: Context) -> str | None:
    """Evicting hard while the hit rate is below target: the working set does not fit."""
    minutes = c.minutes()
    rate = c.grown("evicted_keys") / minutes if minutes >= 1 / 60 else 0.0
    if rate < c.t.evictions_per_minute and not c.d.evictions_during_sample:
        return None
    hits, misses = c.grown("keyspace_hits"), c.grown("keyspace_misses")
    if hits + misses == 0 or hits / (hits + misses) >= c.t.hit_rate_target:
        return None
    return (
        f"{rate:.0f} evictions/min while the hit rate is {hits / (hits + misses):.0%} "
        f"(target {c.t.hit_rate_target:.0%}): the working set does not fit"
    )


def _out_of_memory_before_judgement(c: Context) -> str | None:
    """The rule histories recorded before the judgement rules replay with."""
    info, t = c.d.info, c.t
    kube = c.d.kubernetes
    if kube is not None and kube.oom_killed:
        return f"the Redis container was OOMKilled (memory limit {kube.memory_limit or 'unknown'})"
    if info is None:
        return None
    ratio = info.memory_ratio
    if ratio is not None and ratio >= t.memory_ratio:
        return f"memory at {ratio:.0%} of maxmemory (threshold {t.memory_ratio:.0%})"
    if c.d.evictions_during_sample > 0:
        return f"{c.d.evictions_during_sample} keys evicted while sampling: evictions are climbing"
    minutes = c.minutes()
    if minutes >= 1 / 60 and c.grown("evicted_keys") / minutes >= t.evictions_per_minute:
        rate = c.grown("evicted_keys") / minutes
        return f"{rate:.0f} evictions/min (threshold {t.evictions_per_minute:.0f})"
    return None


def _too_many_connections(c: Context) -> str | None:
    if c.d.has("max_clients_reached"):
        return "Redis refused the worker's own connection: max number of clients reached"
    info = c.d.info
    if info is None:
        return None
    ratio = info.clients_ratio
    if ratio is not None and ratio >= c.t.clients_ratio:
        return (
            f"{info.connected_clients} of {info.maxclients} clients connected "
            f"({ratio:.0%}, threshold {c.t.clients_ratio:.0%})"
        )
    rejected = c.grown("rejected_connections")
    if rejected >= c.t.rejected_connections:
        return f"{rejected} connections rejected" + (" since start" if c.since is None else "")
    return None


def _slow_commands(c: Context) -> str | None:
    since = c.d.taken_at - c.t.slowlog_window
    slow = [
        e
        for e in c.new_slowlog()
        if e.duration_us >= c.t.slowlog_ms * 1000 and e.started_at >= since
    ]
    if len(slow) < c.t.slowlog_entries:
        return None
    worst = max(slow, key=lambda e: e.duration_us)
    return (
        f"{len(slow)} commands slower than {c.t.slowlog_ms:g} ms in the last "
        f"{c.t.slowlog_window}; worst {worst.duration_us / 1000:.1f} ms: {worst.command}"
    )


def _high_latency(c: Context) -> str | None:
    d, t = c.d, c.t
    if d.ping_p95_ms is not None and d.ping_p95_ms > t.ping_p95_ms:
        return f"ping p95 {d.ping_p95_ms:.1f} ms (threshold {t.ping_p95_ms:g} ms)"
    if d.has("persistence_blocking_writes"):
        return "Redis refuses writes and PING (MISCONF): the last RDB save failed"
    info = d.info
    if info is None:
        return None
    if info.rdb_last_bgsave_status != "ok":
        return "last RDB save failed: writes may be blocked (stop-writes-on-bgsave-error)"
    if info.aof_last_write_status != "ok":
        return "last AOF write failed: persistence is blocking writes"
    forked = c.legacy or c.since is None or c.grown("total_forks") > 0  # a fork since?
    if forked and info.latest_fork_usec / 1000 > t.fork_ms:
        return f"last fork took {info.latest_fork_usec / 1000:.0f} ms (threshold {t.fork_ms:g})"
    return None


RULES: list[tuple[Scenario, Rule]] = [
    (Scenario.UNREACHABLE_FROM_RUNBOOK, _unreachable_from_runbook),
    (Scenario.FAILOVER, lambda c: group.failover(c.d, down_corroborated(c))),
    (Scenario.NO_FAILOVER, lambda c: group.no_failover(c.d, down_corroborated(c))),
    (Scenario.REDIS_DOWN, _down),
    (Scenario.APPLICATION_CUT_OFF, _application_cut_off),
    (Scenario.OUT_OF_MEMORY, _out_of_memory),
    (Scenario.TOO_MANY_CONNECTIONS, _too_many_connections),
    (Scenario.SLOW_COMMANDS, _slow_commands),
    (Scenario.HIGH_LATENCY, _high_latency),
    (Scenario.REPLICA_DEGRADED, lambda c: group.replica_degraded(c.d)),
    (Scenario.SENTINELS_DEGRADED, lambda c: group.sentinels_degraded(c.d)),
]


def explain(
    diagnosis: Diagnosis,
    thresholds: Thresholds,
    since: Diagnosis | None = None,
    alerts: tuple[str, ...] = (),
    legacy: bool = False,
) -> list[tuple[Scenario, str]]:
    """Every rule that fires, in precedence order: the first decides, the rest are context.
    `alerts`: the names of the alerts firing in the incident (a second vantage point)."""
    context = Context(diagnosis, thresholds, since, alerts, legacy)
    fired = []
    for scenario, rule in RULES:
        reason = rule(context)
        if reason:
            fired.append((scenario, reason))
    return fired


def classify(
    diagnosis: Diagnosis, thresholds: Thresholds | None = None, since: Diagnosis | None = None
) -> Scenario:
    fired = explain(diagnosis, thresholds or Thresholds(), since)
    return fired[0][0] if fired else Scenario.HEALTHY
