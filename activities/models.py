"""The public contracts: what crosses the wire between alert sources, the CLI, workflows and
activities. Changing a field name here is a breaking change for in-flight incidents and for
users who start workflows by hand, so every model is explicit and rejects unknown input fields.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.analysis_models import Analysis
from activities.finding import Finding as Finding  # re-exported: part of the contracts
from activities.kubernetes_models import KubernetesFacts
from activities.step_result import StepResult as StepResult  # re-exported

K8sName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]


# The workflow type, a public contract: the CLI and the webhook name it without importing the
# workflow (and with it every activity and client library).
WORKFLOW_TYPE = "RedisCacheFailure"


class Contract(BaseModel):
    """Base for input contracts: a typo in a field name is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class RedisTarget(Contract):
    """Which Redis an incident is about, and the Kubernetes objects around it."""

    redis_url: str = Field(description="redis:// or rediss:// URL, without a password")
    namespace: K8sName = "default"
    statefulset: K8sName = "redis"
    api_deployment: K8sName | None = None
    api_replicas: int | None = Field(default=None, ge=0, le=1000)
    fallback_replicas: int | None = Field(default=None, ge=0, le=1000)

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(
                f"scheme must be redis:// or rediss://, got {parts.scheme or 'none'!r} "
                "(example: redis://redis.treebeard-production.svc:6379/0)"
            )
        if not parts.hostname:
            raise ValueError("has no host (example: redis://127.0.0.1:6379/0)")
        if parts.password:
            raise ValueError(
                "must not carry a password: it would be stored in the workflow history; "
                "give it to the worker as RUNBOOK_REDIS_PASSWORD instead"
            )
        try:
            parts.port  # noqa: B018 - property raises on a bad port
        except ValueError as err:
            raise ValueError(f"has a bad port: {err}") from None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"database must be a number, got {path!r}")
        return value

    @property
    def db(self) -> int:
        path = urlsplit(self.redis_url).path.strip("/")
        return int(path) if path else 0

    @property
    def workflow_id(self) -> str:
        """One incident per target: alert storms for the same Redis land in one workflow."""
        return f"redis-cache-failure/{self.namespace}/{self.statefulset}"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(Contract):
    """An alert from any source, normalised."""

    source: str = Field(min_length=1, description="alertmanager, grafana, pagerduty, cli, ...")
    name: str = Field(min_length=1)
    status: AlertStatus = AlertStatus.FIRING
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    fingerprint: str = Field(min_length=1)


class AlertSummary(BaseModel):
    """How many alerts an incident saw: `alerts` lists the first `shown` of them whole."""

    distinct: int = Field(default=0, description="fingerprints")
    firing: int = 0
    resolved: int = 0
    deliveries: int = Field(default=0, description="alerts received, repeats included")
    shown: int = 0
    untracked: int = Field(default=0, description="fingerprints past the ledger's bound")


class Mode(StrEnum):
    AUTO = "auto"
    DRY_RUN = "dry-run"


class Incident(Contract):
    """The workflow input. Secrets never travel here: the worker reads them."""

    target: RedisTarget
    mode: Mode = Mode.AUTO
    alerts: list[Alert] = Field(default_factory=list)
    requested_by: str = Field(default="unknown", min_length=1, max_length=200)
    carried: dict[str, Any] | None = Field(
        default=None,
        description="set by the workflow itself when it continues as new; never by hand",
    )


class Scenario(StrEnum):
    REDIS_DOWN = "redis_down"
    UNREACHABLE_FROM_RUNBOOK = "unreachable_from_runbook"  # only the worker cannot reach it
    OUT_OF_MEMORY = "out_of_memory"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SLOW_COMMANDS = "slow_commands"
    HIGH_LATENCY = "high_latency"
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

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)


class StepName(StrEnum):
    DIAGNOSE = "diagnose"
    PING = "ping"
    RESTART = "restart"
    WAIT_READY = "wait_ready"
    FORCE_DELETE_POD = "force_delete_pod"
    MEMORY_PURGE = "memory_purge"
    FLUSH = "flush"
    RAISE_MEMORY_LIMIT = "raise_memory_limit"
    SET_EVICTION_POLICY = "set_eviction_policy"
    RAISE_MAXCLIENTS = "raise_maxclients"
    TUNE_PERSISTENCE = "tune_persistence"
    ENABLE_FALLBACK = "enable_fallback"
    WARM = "warm"
    RE_ENABLE = "re_enable"
    SCALE = "scale"
    WATCH_HIT_RATE = "watch_hit_rate"


StepStatus = Literal["planned", "pending_approval", "running", "succeeded", "failed", "skipped"]


class Condition(StrEnum):
    """When a conditional step runs; evaluated by the workflow at the moment the step is due."""

    STILL_DOWN = "still_down"
    RESTARTED = "restarted"
    RESTART_FAILED = "restart_failed"
    FORCE_DELETED = "force_deleted"
    STILL_DOWN_PAST_FALLBACK_DEADLINE = "still_down_past_fallback_deadline"
    FALLBACK_ENTERED = "fallback_entered"
    STILL_OUT_OF_MEMORY = "still_out_of_memory"
    STILL_OUT_OF_MEMORY_AFTER_FLUSH = "still_out_of_memory_after_flush"
    FLUSHED = "flushed"
    MEMORY_FRAGMENTED = "memory_fragmented"
    MEMORY_LIMIT_RAISED = "memory_limit_raised"


class Step(BaseModel):
    """One runbook step: what it does, whether it destroys anything, who must agree first."""

    name: StepName
    title: str
    destructive: bool = False
    requires_approval: bool = False
    approvals_needed: int = 0
    when: str | None = Field(default=None, description="condition under which the step runs")
    condition: Condition | None = None
    params: dict[str, str | int | float] = Field(default_factory=dict)
    available: bool = True
    status: StepStatus = "planned"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str | None = None
    result: StepResult | None = None


class Decision(Contract):
    """The payload of `approve` / `reject`, and of `decide` with its `decision`."""

    step: StepName
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)
    decision: Literal["approve", "reject"] = "approve"


class Abort(Contract):
    """The payload of `abort`: stop after the current step, skip the rest."""

    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)
    restore_api: bool = Field(
        default=True, description="still undo fallback (cache back on, replicas back)"
    )


class Refusal(Contract):
    """The payload of `refused`: an approval attempt the front door turned away (a forged or
    stale chat action, an unmapped user). Recorded in the timeline, never acted upon."""

    source: str = Field(min_length=1, max_length=100)
    actor: str = Field(default="unknown", max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class Approval(BaseModel):
    """A decision the workflow accepted (refused ones are only in the timeline)."""

    step: StepName
    approver: str
    comment: str = ""
    approved: bool
    at: datetime


class PendingApproval(BaseModel):
    step: StepName
    reason: str
    action: str = ""
    since: datetime
    approvals_needed: int
    approved_by: list[str] = Field(default_factory=list)


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    message: str
    actor: str | None = None


Phase = Literal["triage", "planning", "executing", "recovering", "reporting", "done"]
Outcome = Literal["resolved", "mitigated", "escalated", "aborted", "planned"]


class IncidentStatus(BaseModel):
    """Answer of the `status` query."""

    phase: Phase
    scenario: Scenario | None = None
    reasons: list[str] = Field(default_factory=list)
    plan: list[Step] = Field(default_factory=list)
    current_step: StepName | None = None
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    alert_summary: AlertSummary = Field(default_factory=AlertSummary)
    review: str = ""


class Figures(BaseModel):
    """The numbers a post-incident review asks for."""

    time_to_detect_s: float | None = Field(default=None, description="first alert -> start")
    time_to_mitigate_s: float | None = Field(default=None, description="start -> first fix")
    time_to_resolve_s: float | None = Field(default=None, description="start -> verified")
    approval_wait_s: float = 0.0
    hit_rate_before: float | None = None
    hit_rate_after: float | None = None
    evictions: int | None = None
    restarts: int = 0


class IncidentReport(BaseModel):
    """The workflow result: what happened, in the order it happened."""

    workflow_id: str
    target: RedisTarget
    mode: Mode
    scenario: Scenario
    reasons: list[str] = Field(default_factory=list)
    outcome: Outcome
    steps: list[Step] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    diagnosis: Diagnosis
    verification: Diagnosis | None = None
    analysis: Analysis = Field(default_factory=lambda: Analysis())
    escalations: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(
        default_factory=list, description="the first and the latest entries; see kind 'omitted'"
    )
    alerts: list[Alert] = Field(default_factory=list)
    alert_summary: AlertSummary = Field(default_factory=AlertSummary)
    requested_by: str = ""
    figures: Figures = Field(default_factory=Figures)
    temporary: list[str] = Field(
        default_factory=list, description="changes made at runtime only: lost at a restart"
    )
    review: str = Field(default="", description="the post-incident review, Markdown")
    started_at: datetime
    finished_at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "scenario": self.scenario.value,
            "outcome": self.outcome,
            "steps": [s.name.value for s in self.steps],
        }
