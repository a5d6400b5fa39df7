"""Thresholds and precedence of classify, as a table over built diagnoses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities.policy import Thresholds
from contracts.diagnosis import Diagnosis, RedisInfo, Scenario, SlowlogEntry
from contracts.finding import Finding
from contracts.kubernetes import KubeProblem, KubernetesFacts, PodFacts
from workflows.runbook.classify import classify, explain, stuck_pod

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
MB = 1024 * 1024


def diag(reachable: bool = True, findings: tuple[str, ...] = (), **fields: Any) -> Diagnosis:
    slowlog = fields.pop("slowlog", [])
    p95 = fields.pop("p95", 0.3)
    sample = fields.pop("evictions_during_sample", 0)
    base: dict[str, Any] = {
        "maxmemory": 100 * MB,
        "used_memory": 10 * MB,
        "maxclients": 1000,
        "connected_clients": 10,
        "uptime_seconds": 3600,
    }
    info = RedisInfo(**(base | fields))
    return Diagnosis(
        redis_url="redis://r:6379/0",
        taken_at=NOW,
        reachable=reachable,
        findings=[Finding(code=c, message=c) for c in findings],
        ping_p50_ms=0.2 if reachable else None,
        ping_p95_ms=p95 if reachable else None,
        info=info if reachable else None,
        evictions_during_sample=sample,
        slowlog=slowlog,
    )


def slow(ms: float, ago: timedelta = timedelta(minutes=1)) -> SlowlogEntry:
    return SlowlogEntry(id=1, started_at=NOW - ago, duration_us=int(ms * 1000), command="KEYS *")


CASES = [
    ("healthy", diag(), Scenario.HEALTHY),
    ("refused", diag(False, ("connection_refused",)), Scenario.REDIS_DOWN),
    ("loading", diag(False, ("loading",)), Scenario.REDIS_DOWN),
    ("timeout", diag(False, ("timeout",)), Scenario.REDIS_DOWN),
    ("memory 89%", diag(used_memory=89 * MB), Scenario.HEALTHY),
    ("memory 90%", diag(used_memory=90 * MB), Scenario.OUT_OF_MEMORY),
    ("no maxmemory", diag(maxmemory=0, used_memory=900 * MB), Scenario.HEALTHY),
    # out of memory as a person judges it: a full cache evicting as designed is healthy
    ("lru full, evicting", diag(used_memory=99 * MB, maxmemory_policy="allkeys-lru",
                                evictions_during_sample=3, evicted_keys=10**6), Scenario.HEALTHY),
    ("noeviction full", diag(used_memory=95 * MB, maxmemory_policy="noeviction"),
     Scenario.OUT_OF_MEMORY),
    ("volatile, no TTLs", diag(used_memory=95 * MB, maxmemory_policy="volatile-lru", keys=9,
                               expires=0), Scenario.OUT_OF_MEMORY),
    ("volatile, TTLs", diag(used_memory=95 * MB, maxmemory_policy="volatile-lru", keys=9,
                            expires=5), Scenario.HEALTHY),
    ("lru full refusing", diag(used_memory=95 * MB, maxmemory_policy="allkeys-lru",
                               oom_errors=4), Scenario.OUT_OF_MEMORY),
    ("refused long ago", diag(used_memory=50 * MB, oom_errors=4), Scenario.HEALTHY),
    ("evicting now, hits fine", diag(evictions_during_sample=3, keyspace_hits=90,
                                     keyspace_misses=10), Scenario.HEALTHY),
    ("evicting now, missing", diag(evictions_during_sample=3, keyspace_hits=10,
                                   keyspace_misses=90), Scenario.OUT_OF_MEMORY),
    ("evictions 99/min", diag(evicted_keys=99 * 60, keyspace_misses=9), Scenario.HEALTHY),
    ("evictions 100/min", diag(evicted_keys=100 * 60, keyspace_misses=9), Scenario.OUT_OF_MEMORY),
    ("clients 89%", diag(connected_clients=899), Scenario.HEALTHY),
    ("clients 90%", diag(connected_clients=900), Scenario.TOO_MANY_CONNECTIONS),
    ("rejected", diag(rejected_connections=1), Scenario.TOO_MANY_CONNECTIONS),
    ("refused us", diag(False, ("max_clients_reached",)), Scenario.TOO_MANY_CONNECTIONS),
    ("slow 9ms", diag(slowlog=[slow(9)]), Scenario.HEALTHY),
    ("slow 10ms", diag(slowlog=[slow(10)]), Scenario.SLOW_COMMANDS),
    ("slow but old", diag(slowlog=[slow(50, timedelta(hours=1))]), Scenario.HEALTHY),
    ("p95 10ms", diag(p95=10.0), Scenario.HEALTHY),
    ("p95 11ms", diag(p95=11.0), Scenario.HIGH_LATENCY),
    ("bgsave err", diag(rdb_last_bgsave_status="err"), Scenario.HIGH_LATENCY),
    ("aof err", diag(aof_last_write_status="err"), Scenario.HIGH_LATENCY),
    ("slow fork", diag(latest_fork_usec=600_000), Scenario.HIGH_LATENCY),
    # precedence: the first rule in runbook order wins
    ("oom>clients", diag(used_memory=95 * MB, connected_clients=990), Scenario.OUT_OF_MEMORY),
    ("rej>slow", diag(rejected_connections=5, slowlog=[slow(50)]), Scenario.TOO_MANY_CONNECTIONS),
    ("slow beats latency", diag(slowlog=[slow(50)], p95=40.0), Scenario.SLOW_COMMANDS),
]  # fmt: skip


@pytest.mark.parametrize(
    ("diagnosis", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_classify(diagnosis: Diagnosis, expected: Scenario) -> None:
    assert classify(diagnosis) is expected


def test_thresholds_come_from_policy() -> None:
    d = diag(used_memory=80 * MB)
    assert classify(d) is Scenario.HEALTHY
    assert classify(d, Thresholds(memory_ratio=0.8)) is Scenario.OUT_OF_MEMORY


def test_explain_lists_every_rule_that_fired_in_order() -> None:
    d = diag(used_memory=95 * MB, rejected_connections=2, p95=30.0)
    fired = explain(d, Thresholds())
    assert [s for s, _ in fired] == [
        Scenario.OUT_OF_MEMORY,
        Scenario.TOO_MANY_CONNECTIONS,
        Scenario.HIGH_LATENCY,
    ]
    assert "95%" in fired[0][1]


def test_since_counts_only_what_happened_after_the_baseline() -> None:
    old = slow(50, timedelta(minutes=2))
    before = diag(rejected_connections=7, slowlog=[old])
    later = before.model_copy(update={"taken_at": NOW + timedelta(minutes=1)})
    assert classify(later) is Scenario.TOO_MANY_CONNECTIONS
    assert classify(later, since=before) is Scenario.HEALTHY

    fresh_slow = SlowlogEntry(id=2, started_at=NOW, duration_us=50_000, command="KEYS *")
    slower = later.model_copy(update={"slowlog": [fresh_slow, old]})
    assert classify(slower, since=before) is Scenario.SLOW_COMMANDS


def test_since_ignores_a_restarted_server_baseline() -> None:
    before = diag(rejected_connections=7)
    restarted = diag(rejected_connections=3, uptime_seconds=10)
    assert classify(restarted, since=before) is Scenario.TOO_MANY_CONNECTIONS


def _kube(ready: bool = True, endpoints: int | None = 1) -> KubernetesFacts:
    pod = PodFacts(name="redis-0", uid="u", phase="Running", ready=ready, state="running")
    facts = KubernetesFacts(taken_at=NOW, reachable=True, pods=[pod], ready_endpoints=endpoints)
    facts.problem = KubeProblem.NONE if ready else KubeProblem.NOT_READY
    return facts


@pytest.mark.parametrize(
    ("finding", "hint"),
    [
        ("connection_refused", "wrong port"),
        ("timeout", "NetworkPolicy"),
        ("dns_failure", "DNS"),
        ("tls_error", "TLS"),
        ("auth_failed", "credentials"),
    ],
)
def test_only_the_runbook_cut_off_is_its_own_scenario(finding: str, hint: str) -> None:
    cut_off = diag(False, (finding,)).model_copy(update={"kubernetes": _kube()})
    fired = explain(cut_off, Thresholds())
    assert fired[0][0] is Scenario.UNREACHABLE_FROM_RUNBOOK
    assert "Kubernetes calls it Ready" in fired[0][1] and hint in fired[0][1]


def test_down_needs_a_second_vantage_point() -> None:
    refused = diag(False, ("connection_refused",))
    not_ready = refused.model_copy(update={"kubernetes": _kube(ready=False)})
    no_endpoints = refused.model_copy(update={"kubernetes": _kube(endpoints=0)})
    ready = refused.model_copy(update={"kubernetes": _kube()})
    assert classify(not_ready) is Scenario.REDIS_DOWN
    assert classify(no_endpoints) is Scenario.REDIS_DOWN
    alerted = explain(ready, Thresholds(), alerts=("RedisDown",))
    assert alerted[0][0] is Scenario.UNREACHABLE_FROM_RUNBOOK  # a writable alert never outweighs
    alone_alerted = explain(refused, Thresholds(), alerts=("RedisDown",))  # no Kubernetes view
    assert alone_alerted[0][0] is Scenario.REDIS_DOWN
    assert "only as the runbook sees it" not in alone_alerted[0][1]
    alone = explain(refused, Thresholds())  # no Kubernetes view, no alert
    assert alone[0][0] is Scenario.REDIS_DOWN and "only as the runbook sees it" in alone[0][1]
    assert explain(ready, Thresholds(), legacy=True)[0][0] is Scenario.REDIS_DOWN


def test_an_oomkilled_crash_loop_takes_the_memory_path() -> None:
    looping = _kube(ready=False)
    looping.oom_killed = looping.crash_looping = True
    down = diag(False, ("connection_refused",)).model_copy(update={"kubernetes": looping})
    assert classify(down) is Scenario.OUT_OF_MEMORY
    crashed = _kube(ready=False)
    crashed.crash_looping = True  # not OOMKilled (or long ago): a restart's business
    assert classify(down.model_copy(update={"kubernetes": crashed})) is Scenario.REDIS_DOWN


def test_the_stuck_pod_is_the_one_force_deleted() -> None:
    def pod(name: str, **state: Any) -> PodFacts:
        fields = {"uid": name, "phase": "Running", "ready": True, "state": "running"} | state
        return PodFacts(name=name, **fields)

    facts = _kube()
    facts.pods = [pod("redis-0"), pod("redis-1", ready=False), pod("redis-2")]
    assert (found := stuck_pod(facts)) is not None and found.name == "redis-1"
    facts.pods.append(pod("redis-3", ready=False, waiting_reason="CrashLoopBackOff"))
    assert (found := stuck_pod(facts)) is not None and found.name == "redis-3"
    facts.pods.append(pod("redis-4", terminating=True))
    assert (found := stuck_pod(facts)) is not None and found.name == "redis-4"
    facts.pods = [pod("redis-0"), pod("redis-1")]
    assert stuck_pod(facts) is None  # every pod Ready: nothing is force-deleted
