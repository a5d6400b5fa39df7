"""What triage sees of Redis (and, beside it, of Kubernetes), and the scenarios it is judged as."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.finding import Finding
from contracts.kubernetes import KubernetesFacts
from contracts.replication import ReplicationFacts


class Scenario(StrEnum):
    REDIS_DOWN = "redis_down"
    APPLICATION_CUT_OFF = "application_cut_off"  # Redis is fine; a NetworkPolicy shuts the API out
    UNREACHABLE_FROM_RUNBOOK = "unreachable_from_runbook"  # only the worker cannot reach it
    OUT_OF_MEMORY = "out_of_memory"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SLOW_COMMANDS = "slow_commands"
    HIGH_LATENCY = "high_latency"
    # a Sentinel-managed group
    FAILOVER = "failover"  # the master is down and Sentinel can fail over (or is failing over)
    NO_FAILOVER = "no_failover"  # the master is down and Sentinel cannot: no quorum
    REPLICA_DEGRADED = "replica_degraded"  # a replica is down, lagging or its link is down
    SENTINELS_DEGRADED = "sentinels_degraded"  # Sentinels down or short of quorum: for a person
    HEALTHY = "healthy"


class SlowlogEntry(BaseModel):
    id: int
    started_at: datetime
    duration_us: int
    command: str


class RedisInfo(BaseModel):
    """The INFO fields the runbook reads, typed."""

    redis_version: str = ""
    run_id: str = Field(default="", description="changes when the server restarts")
    role: str = ""
    uptime_seconds: int = 0
    used_memory: int = 0
    maxmemory: int = 0
    maxmemory_policy: str = ""
    mem_fragmentation_ratio: float = 0.0
    connected_clients: int = 0
    maxclients: int = 0
    rejected_connections: int = 0
    blocked_clients: int = 0
    evicted_keys: int = 0
    oom_errors: int = Field(default=0, description="writes refused with OOM (errorstat_OOM)")
    flushdb_calls: int = Field(default=-1, description="FLUSHDBs the server ran; -1 unknown")
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    rdb_bgsave_in_progress: int = 0
    aof_rewrite_in_progress: int = 0
    rdb_last_bgsave_status: str = "ok"
    aof_last_write_status: str = "ok"
    latest_fork_usec: int = 0
    total_forks: int = 0
    save: str | None = Field(default=None, description="CONFIG GET save; None: unreadable")
    aof_enabled: int = 0
    connected_slaves: int = 0
    master_link_status: str | None = None
    keys: int = Field(default=0, description="keys in the target's database")
    expires: int = Field(default=0, description="keys with a TTL in the target's database")

    @property
    def hit_rate(self) -> float | None:
        total = self.keyspace_hits + self.keyspace_misses
        return self.keyspace_hits / total if total else None

    @property
    def memory_ratio(self) -> float | None:
        return self.used_memory / self.maxmemory if self.maxmemory else None

    @property
    def clients_ratio(self) -> float | None:
        return self.connected_clients / self.maxclients if self.maxclients else None


class Diagnosis(BaseModel):
    """What triage saw. `reachable` False means `findings` say why."""

    redis_url: str
    taken_at: datetime
    reachable: bool
    findings: list[Finding] = Field(default_factory=list)
    ping_samples_ms: list[float] = Field(default_factory=list)
    ping_p50_ms: float | None = None
    ping_p95_ms: float | None = None
    info: RedisInfo | None = None
    evictions_during_sample: int = 0
    slowlog: list[SlowlogEntry] = Field(default_factory=list)
    dbsize: int | None = None
    kubernetes: KubernetesFacts | None = None
    replication: ReplicationFacts | None = Field(
        default=None, description="a Sentinel-managed target's group; None for a single Redis"
    )

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)

    def has_about(self, code: str, subject: str) -> bool:
        return any(f.code == code and f.subject == subject for f in self.findings)
