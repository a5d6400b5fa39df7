"""The runbook's path for each scenario, as data: shown by `status`, executed step by step.

Pure: the same scenario, diagnosis and policy always give the same plan, so a replayed workflow
plans exactly what it planned the first time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from activities.policy import Policy
from contracts.diagnosis import Diagnosis, Scenario
from contracts.steps import Condition, Step, StepName
from workflows.runbook import group

# Destructive: loses cached data, interrupts service, or moves load onto the database.
DESTRUCTIVE = frozenset(
    {
        StepName.RESTART,
        StepName.FORCE_DELETE_POD,
        StepName.FLUSH,
        StepName.RAISE_MEMORY_LIMIT,
        StepName.SET_EVICTION_POLICY,
        StepName.TUNE_PERSISTENCE,
        StepName.ENABLE_FALLBACK,
        StepName.SENTINEL_FAILOVER,
        StepName.RESTART_REPLICA,
    }
)
EVICTING_POLICIES = ("allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu")
TUNED_PERSISTENCE: dict[str, str | int | float] = {
    "save": "900 1 300 10",
    "stop-writes-on-bgsave-error": "no",
    "rdbcompression": "yes",
}


WHEN = {
    Condition.STILL_DOWN: "Redis is still down",
    Condition.RESTARTED: "the StatefulSet was restarted",
    Condition.RESTART_FAILED: "the restart does not bring Redis back by the deadline",
    Condition.FORCE_DELETED: "the pod was force-deleted",
    Condition.STILL_DOWN_PAST_FALLBACK_DEADLINE: "Redis is still down past the fallback deadline",
    Condition.FALLBACK_ENTERED: "fallback was entered and Redis is back",
    Condition.STILL_OUT_OF_MEMORY: "memory is still above the threshold",
    Condition.STILL_OUT_OF_MEMORY_AFTER_FLUSH: "memory is still too high after the flush",
    Condition.FLUSHED: "the cache was flushed",
    Condition.MEMORY_FRAGMENTED: "memory is fragmented",
    Condition.MEMORY_LIMIT_RAISED: "the memory limit was raised (the pod restarts)",
    Condition.FAILED_OVER: "a master answers after the failover",
}
MIB = 1024 * 1024
HOUR = timedelta(hours=1)


class _Planner:
    """Builds steps with the policy's approval rules applied in one place."""

    def __init__(self, policy: Policy, corroborated: bool = True, legacy: bool = False) -> None:
        self.policy = policy
        self.corroborated = corroborated  # a second vantage point agrees Redis is down
        self.legacy = legacy  # plans as they were, for histories recorded before judgement
        self.steps: list[Step] = []

    def add(
        self,
        name: StepName,
        title: str,
        when: Condition | None = None,
        params: Mapping[str, str | int | float] | None = None,
        gated_because: str | None = None,
    ) -> None:
        """`gated_because`: a reason this step needs a person even where the policy would
        let it run on its own (it then needs one approval)."""
        needed = self.policy.approvals.needed(name)
        if gated_because is not None:
            needed = max(needed, 1)
            title = f"{title} (approval: {gated_because})"
        self.steps.append(
            Step(
                name=name,
                title=title,
                destructive=name in DESTRUCTIVE,
                requires_approval=needed > 0,
                approvals_needed=needed,
                when=WHEN[when] if when else None,
                condition=when,
                params=dict(params or {}),
            )
        )

    def recovery(self, after: Condition, restore_api: bool = False) -> None:
        self.add(StepName.WARM, "Warm the cache: critical keys first", when=after)
        if restore_api:
            self.add(StepName.RE_ENABLE, "CACHE_ENABLED=true on the API", when=after)
            self.add(
                StepName.SCALE, "Scale the API back to its replicas before fallback", when=after
            )
        recovery = self.policy.recovery
        self.add(
            StepName.WATCH_HIT_RATE,
            f"Watch the hit rate climb to {self.policy.thresholds.hit_rate_target:.0%}",
            when=after,
            params={
                "goal": self.policy.thresholds.hit_rate_target,
                "interval_s": recovery.watch_interval.total_seconds(),
                "deadline_s": recovery.watch_deadline.total_seconds(),
            },
        )


# The worker's own credentials or trust are wrong: a finding to fix, not an outage to restart.
WORKER_SIDE = {
    "auth_failed": "Ping again once the worker's Redis password is fixed",
    "tls_error": "Ping again once the worker's TLS settings (CA, certificate) are fixed",
    "dns_failure": "Ping again once the worker can resolve the Redis host",
}


def _redis_down(p: _Planner, d: Diagnosis) -> None:
    worker_side = next((title for code, title in WORKER_SIDE.items() if d.has(code)), None)
    if worker_side is not None:
        p.add(StepName.PING, worker_side)
        return
    p.add(StepName.PING, "Ping Redis to confirm it is down")
    if d.has("loading"):
        p.add(StepName.WAIT_READY, "Wait for Redis to finish loading its dataset")
    uncorroborated = None if p.corroborated else "Redis is down only as the runbook sees it"
    p.add(
        StepName.RESTART,
        "Rollout-restart the Redis StatefulSet",
        when=Condition.STILL_DOWN,
        gated_because=_restart_budget_spent(d, p.policy) or uncorroborated,
    )
    p.add(StepName.WAIT_READY, "Wait for the StatefulSet to be ready and Redis to answer PING")
    p.add(
        StepName.FORCE_DELETE_POD,
        "Describe the pod and PVC, force-delete the pod",
        when=Condition.RESTART_FAILED,
    )
    p.add(StepName.WAIT_READY, "Wait for the recreated pod", when=Condition.FORCE_DELETED)
    _fallback(p)


def _unreachable_from_runbook(p: _Planner, d: Diagnosis) -> None:
    """Kubernetes calls Redis Ready: nothing is restarted unless a person says so. A
    Sentinel-managed group's Sentinels see the master up: no restart is even offered."""
    if d.replication is not None:
        return
    p.add(
        StepName.RESTART,
        "Rollout-restart the Redis StatefulSet",
        when=Condition.STILL_DOWN,
        gated_because="only the runbook cannot reach Redis, Kubernetes calls it Ready",
    )
    p.add(StepName.WAIT_READY, "Wait for the StatefulSet to be ready", when=Condition.RESTARTED)


def _application_cut_off(p: _Planner, d: Diagnosis) -> None:
    """Nothing to do to Redis: the verification finds the API still cut off, and the incident
    escalates with the policy named, for a person to fix the policy."""


def _fallback(p: _Planner) -> None:
    _enter_fallback(p)
    p.recovery(after=Condition.FALLBACK_ENTERED, restore_api=True)


def _enter_fallback(p: _Planner) -> None:
    p.add(
        StepName.ENABLE_FALLBACK,
        "Serve from the database: CACHE_ENABLED=false on the API and scale it up",
        when=Condition.STILL_DOWN_PAST_FALLBACK_DEADLINE,
        params={"replicas": p.policy.limits.fallback_replicas},
    )


def _restart_budget_spent(d: Diagnosis, policy: Policy) -> str | None:
    """Past `limits.restarts_per_hour` restarts of this target (counted on its StatefulSet,
    across incidents and workers), a restart loop is a problem for a person, not a fix."""
    kube = d.kubernetes
    if kube is None or kube.statefulset is None:
        return None
    budget = policy.limits.restarts_per_hour
    since = kube.taken_at - HOUR
    recent = sum(1 for at in kube.statefulset.restarts if at > since)
    if recent < budget:
        return None
    return f"{recent} restarts of this target in the last hour, budget {budget}"


def _eviction_policy_for(d: Diagnosis) -> str:
    """volatile-lru only when nearly every key has a TTL; otherwise LRU may evict anything."""
    info = d.info
    if info and info.keys and info.expires / info.keys >= 0.9:
        return "volatile-lru"
    return "allkeys-lru"


def _out_of_memory(p: _Planner, d: Diagnosis) -> None:
    if not d.reachable:  # an OOMKilled crash loop: only a larger limit helps
        _raise_memory_limit(p, d, when=None)
        return
    current = d.info.maxmemory_policy if d.info else ""
    if current not in EVICTING_POLICIES:
        target = _eviction_policy_for(d)
        p.add(
            StepName.SET_EVICTION_POLICY,
            f"Set maxmemory-policy {current or 'unknown'} -> {target}",
            params={"policy": target},
        )
    p.add(StepName.MEMORY_PURGE, "MEMORY PURGE: give fragmented memory back")
    p.add(
        StepName.FLUSH,
        "FLUSHDB on the target's database (never FLUSHALL)",
        when=Condition.STILL_OUT_OF_MEMORY,
    )
    oom_killed = bool(d.kubernetes and d.kubernetes.oom_killed)
    _raise_memory_limit(
        p, d, when=None if oom_killed else Condition.STILL_OUT_OF_MEMORY_AFTER_FLUSH
    )
    p.recovery(after=Condition.FLUSHED)


def _raise_memory_limit(p: _Planner, d: Diagnosis, when: Condition | None) -> None:
    kube = d.kubernetes
    oom_killed = bool(kube and kube.oom_killed)
    raised = _raised_limit(d, p.policy) if kube and kube.memory_limit_bytes else None
    ceiling = p.policy.limits.memory_limit_ceiling_mib
    limit: dict[str, str | int | float] = {"limit": raised} if raised else {}
    if raised == "":  # already at the ceiling: a person decides on more
        limit = {"ceiling": f"{ceiling}Mi"}
    p.add(
        StepName.RAISE_MEMORY_LIMIT,
        "Raise the Redis container's memory limit"
        + (f" to {raised}" if raised else "")
        + (f" (at the policy's ceiling {ceiling}Mi: by hand)" if raised == "" else "")
        + (" (it was OOMKilled)" if oom_killed else ""),
        when=when,
        params=limit,
    )
    p.add(
        StepName.WAIT_READY,
        "Wait for the pod to restart with the new limit",
        when=Condition.MEMORY_LIMIT_RAISED,
    )


def _raised_limit(d: Diagnosis, policy: Policy) -> str:
    """The container's limit times the policy's factor, in whole MiB, never past the policy's
    ceiling; "" when the limit is at the ceiling already."""
    current = d.kubernetes.memory_limit_bytes if d.kubernetes else None
    wanted = min(
        -(-int((current or 0) * policy.limits.memory_limit_factor) // MIB),
        policy.limits.memory_limit_ceiling_mib,
    )
    return f"{wanted}Mi" if wanted * MIB > (current or 0) else ""


def _too_many_connections(p: _Planner, d: Diagnosis) -> None:
    current = d.info.maxclients if d.info else 0
    limits = p.policy.limits
    wanted = min(limits.maxclients_target, limits.maxclients_ceiling)
    if current < wanted:
        p.add(
            StepName.RAISE_MAXCLIENTS,
            f"Raise maxclients {current or '?'} -> {wanted} (or the most the OS allows)",
            params={"maxclients": wanted},
        )


def _pause_persistence(p: _Planner, d: Diagnosis) -> None:
    """The runbook: disable persistence temporarily, when snapshots are what hurts (a slow
    fork, a failing save). Never turns snapshots on where they were off; the workflow puts
    them back when the incident ends resolved (otherwise it says how)."""
    info = d.info
    if p.legacy:
        p.add(
            StepName.TUNE_PERSISTENCE,
            "Tune persistence: save 900 1 300 10, stop-writes-on-bgsave-error no",
            params=TUNED_PERSISTENCE,
        )
        return
    if info is None or not info.save:  # snapshots off (save ""), or unreadable: leave them
        return
    failing = info.rdb_last_bgsave_status != "ok" or d.has("persistence_blocking_writes")
    slow_fork = info.latest_fork_usec / 1000 > p.policy.thresholds.fork_ms
    if not (failing or slow_fork or info.rdb_bgsave_in_progress):
        return
    params: dict[str, str | int | float] = {"save": ""}
    if failing:
        params["stop-writes-on-bgsave-error"] = "no"
    p.add(
        StepName.TUNE_PERSISTENCE,
        f"Pause RDB snapshots (save {info.save!r} -> '') until the incident ends"
        + (", and let writes through a failing save" if failing else ""),
        params=params,
    )


def _slow_commands(p: _Planner, d: Diagnosis) -> None:
    _pause_persistence(p, d)  # the offending commands themselves are for a person


def _high_latency(p: _Planner, d: Diagnosis) -> None:
    _pause_persistence(p, d)
    ratio = d.info.mem_fragmentation_ratio if d.info else 0.0
    if ratio > p.policy.thresholds.fragmentation_ratio:
        p.add(StepName.MEMORY_PURGE, f"MEMORY PURGE: fragmentation ratio is {ratio:.2f}")


def _failover(p: _Planner, d: Diagnosis) -> None:
    """Sentinel moves the master; the runbook waits, checks, then brings the old one back."""
    _after_failover(p, d)


def _no_failover(p: _Planner, d: Diagnosis) -> None:
    """Sentinel cannot agree to move the master: a person may force it."""
    facts = d.replication
    if facts is None:
        return
    p.add(
        StepName.SENTINEL_FAILOVER,
        f"SENTINEL FAILOVER {facts.master_name}: promote a replica "
        "(the Sentinels cannot reach quorum to do it themselves)",
    )
    _after_failover(p, d)


def _after_failover(p: _Planner, d: Diagnosis) -> None:
    facts = d.replication
    if facts is None:
        return
    # Sentinel gives a failover failover-timeout to reconfigure the replicas before it
    # switches the master, and retries a failed one after twice that.
    bound = facts.down_after_s + 2 * facts.failover_timeout_s
    p.add(
        StepName.WAIT_FAILOVER,
        f"Wait for Sentinel to promote a replica (up to {bound:g} s: down-after plus twice "
        "failover-timeout); nothing is restarted meanwhile",
        params={"timeout_s": bound, "old_master": facts.master or ""},
    )
    p.add(
        StepName.VERIFY_WRITES,
        "Verify the new master takes a write (SET, GET, DEL)",
        when=Condition.FAILED_OVER,
    )
    if facts.master_service:
        p.add(
            StepName.VERIFY_CLIENTS,
            f"Verify the Service {facts.master_service}, how clients reach the master, points "
            "at the new master only",
            when=Condition.FAILED_OVER,
        )
    if facts.master:
        p.add(
            StepName.RESTART_REPLICA,
            f"Restart the old master {group.named(d, facts.master)}'s pod as a replica of "
            "the new master (only once it is not the master)",
            when=Condition.FAILED_OVER,
            params={"address": facts.master},
        )


def _replica_degraded(p: _Planner, d: Diagnosis) -> None:
    """Resynchronise each replica that is behind by restarting its pod; never the master."""
    for member in group.degraded_replicas(d):
        down = d.has_about("replica_down", member.address)
        p.add(
            StepName.RESTART_REPLICA,
            f"Resynchronise replica {group.named(d, member.address)}: restart its pod",
            params={"address": member.address},
            gated_because=None if down else "the replica is serving; its pod restarts",
        )


def _sentinels_degraded(p: _Planner, d: Diagnosis) -> None:
    """The Sentinels are not the runbook's to restart (their pods are not the target's): the
    verification finds them still short, and the incident escalates naming them."""


PATHS = {
    Scenario.UNREACHABLE_FROM_RUNBOOK: _unreachable_from_runbook,
    Scenario.REDIS_DOWN: _redis_down,
    Scenario.APPLICATION_CUT_OFF: _application_cut_off,
    Scenario.OUT_OF_MEMORY: _out_of_memory,
    Scenario.TOO_MANY_CONNECTIONS: _too_many_connections,
    Scenario.SLOW_COMMANDS: _slow_commands,
    Scenario.HIGH_LATENCY: _high_latency,
    Scenario.FAILOVER: _failover,
    Scenario.NO_FAILOVER: _no_failover,
    Scenario.REPLICA_DEGRADED: _replica_degraded,
    Scenario.SENTINELS_DEGRADED: _sentinels_degraded,
}


def plan_for(
    scenario: Scenario,
    diagnosis: Diagnosis,
    policy: Policy,
    corroborated: bool = True,
    legacy: bool = False,
) -> list[Step]:
    """The full runbook path: diagnose first, the scenario's steps, then verify.
    `corroborated` False: only the worker sees Redis down, so no restart runs unattended."""
    planner = _Planner(policy, corroborated, legacy)
    planner.add(StepName.DIAGNOSE, "Read PING, INFO, SLOWLOG and DBSIZE")
    path = PATHS.get(scenario)
    if path is None:
        return planner.steps
    path(planner, diagnosis)
    planner.add(StepName.DIAGNOSE, "Verify: a fresh diagnosis shows the symptom gone")
    return planner.steps


def fallback_again(policy: Policy, recover: bool = True) -> list[Step]:
    """Redis went down again after the API got its cache back (a flap): the fallback and the
    recovery once more, then a fresh verification; without `recover`, the fallback only (the
    API stays on the database for a person). No restart: a flapping Redis restarted again and
    again is what the restart budget is for, so that stays with a person."""
    planner = _Planner(policy)
    if recover:
        _fallback(planner)
    else:
        _enter_fallback(planner)
    planner.add(StepName.DIAGNOSE, "Verify: a fresh diagnosis shows the symptom gone")
    return planner.steps


def mark_unavailable(plan: list[Step], available: frozenset[StepName]) -> list[Step]:
    """Steps this worker cannot perform stay in the plan, marked, so a person sees the gap."""
    for step in plan:
        step.available = step.name in available
    return plan


def tighten_approvals(steps: list[Step], policy: Policy) -> list[Step]:
    """A continued run reads the policy afresh: the steps still to come need what it asks, or
    what they already needed, whichever is more. Never less."""
    for step in steps:
        needed = max(step.approvals_needed, policy.approvals.needed(step.name))
        step.requires_approval, step.approvals_needed = needed > 0, needed
    return steps
