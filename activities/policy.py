"""The operator's policy: thresholds that decide the scenario, and who must approve what.

It is configuration (runbook.yaml) but it travels into workflows, which cannot read files, so it
lives beside the contracts and reaches the workflow through the `runbook_config` local activity,
which every run calls (a continued run too): the value a run acted on is recorded in its
history, and no workflow input can stand in for it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from temporalio import activity

from activities.targets import TargetBook
from contracts.steps import StepName
from contracts.target import RedisTarget

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """Accept what people write in YAML: 15m, 30s, 1h, 250ms, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2] or "s"])
        raise ValueError(f"{value!r} is not a duration: write it like 15m, 30s, 1h or 250ms")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float),
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(Section):
    """The runbook's numbers. Defaults follow the reference runbook's monitoring section."""

    memory_ratio: float = Field(default=0.90, gt=0, le=1, description="used/maxmemory")
    evictions_per_minute: float = Field(default=100, ge=0)
    clients_ratio: float = Field(default=0.90, gt=0, le=1, description="connected/maxclients")
    rejected_connections: int = Field(default=1, ge=1)
    slowlog_ms: float = Field(default=10, gt=0)
    slowlog_entries: int = Field(default=1, ge=1)
    slowlog_window: Duration = timedelta(minutes=15)
    ping_p95_ms: float = Field(default=10, gt=0)
    fork_ms: float = Field(default=500, gt=0)
    fragmentation_ratio: float = Field(default=1.5, gt=1)
    hit_rate_target: float = Field(default=0.60, gt=0, le=1)
    ping_samples: int = Field(default=5, ge=1, le=100)
    oom_window: Duration = Field(
        default=timedelta(hours=1),
        description="an OOMKilled termination older than this is history, not this incident",
    )
    down_alerts: list[str] = Field(
        default_factory=lambda: ["RedisDown"],
        description="alert names that mean Redis is down as monitoring sees it (redis_up == 0)",
    )
    vantage_recheck: Duration = Field(
        default=timedelta(seconds=10),
        description="when only the worker cannot reach a Redis Kubernetes calls Ready, look "
        "again after this (a readiness probe may not have failed yet)",
    )
    connect_timeout: Duration = timedelta(seconds=2)


DEFAULT_APPROVAL_STEPS = [
    StepName.FLUSH,
    StepName.FORCE_DELETE_POD,
    StepName.RAISE_MEMORY_LIMIT,
    StepName.SET_EVICTION_POLICY,
    StepName.TUNE_PERSISTENCE,
    StepName.SENTINEL_FAILOVER,
]


class ApprovalPolicy(Section):
    """Who may approve destructive steps, and which steps need it."""

    approvers: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    four_eyes: bool = False
    timeout: Duration = timedelta(minutes=15)
    required_for: list[StepName] = Field(default_factory=lambda: list(DEFAULT_APPROVAL_STEPS))
    approvals_needed: dict[StepName, int] = Field(default_factory=lambda: {StepName.FLUSH: 1})
    verified_only: list[StepName] = Field(
        default_factory=list,
        description="steps only a proven person approves (Slack or an ID token, through a front "
        "door): a raw signal or update for them is refused whatever name it types",
    )
    preapproval_expiry: Duration = Field(
        default=timedelta(minutes=15),
        description="an approval given before its step waits counts only this long",
    )

    def needed(self, step: StepName) -> int:
        if step not in self.required_for:
            return 0
        return max(1, self.approvals_needed.get(step, 1))


class Recovery(Section):
    """How the cache is brought back after a flush or a fallback."""

    watch_interval: Duration = timedelta(seconds=5)
    watch_deadline: Duration = timedelta(minutes=10)


class Outage(Section):
    """Timings of the redis_down path on Kubernetes."""

    ready_timeout: Duration = timedelta(minutes=3)
    fallback_after: Duration = Field(
        default=timedelta(minutes=5), description="serve from the database past this"
    )
    wait_for_redis: Duration = Field(
        default=timedelta(hours=1), description="in fallback, how long to wait for Redis"
    )
    poll: Duration = timedelta(seconds=15)
    max_flaps: int = Field(
        default=2,
        ge=0,
        description="times Redis may go down again after recovery before the workflow stops "
        "re-entering fallback and escalates",
    )


class Limits(Section):
    """Ceilings for steps that raise something: never past these without a person."""

    maxclients_ceiling: int = Field(default=20000, ge=1)
    maxclients_target: int = Field(
        default=10000, ge=1, description="what raise_maxclients asks for (the runbook's 10000)"
    )
    history_events: int = Field(
        default=10000, ge=100, description="continue-as-new past this many history events"
    )
    fallback_replicas: int = Field(default=8, ge=1)
    memory_limit_factor: float = Field(default=1.5, gt=1)
    memory_limit_ceiling_mib: int = Field(
        default=16384, ge=1, description="raise_memory_limit never goes past this (MiB)"
    )
    restarts_per_hour: int = Field(
        default=3,
        ge=0,
        description="restarts of one target the runbook makes on its own in an hour; past "
        "that a restart waits for approval (counted on the StatefulSet, across incidents)",
    )


class EscalationLevel(Section):
    after: Duration
    notify: list[str] = Field(min_length=1, description="who is paged, named in the message")
    message: str
    page: list[str] = Field(
        default_factory=list,
        description="pagerduty channels this level triggers (each its own routing key, so "
        "level 2 can page a second team); resolved when the incident ends well",
    )
    offer_maintenance: bool = Field(
        default=False,
        description="this level offers maintenance mode, behind approval, for a target with "
        "workload.maintenance (the runbook's 30-minute step)",
    )


def _default_levels() -> list[EscalationLevel]:
    return [
        EscalationLevel(
            after=timedelta(minutes=5),
            notify=["on-call escalation"],
            message="Redis cache incident unresolved after 5 minutes",
        ),
        EscalationLevel(
            after=timedelta(minutes=15),
            notify=["senior DevOps"],
            message="Redis cache incident unresolved after 15 minutes",
        ),
        EscalationLevel(
            after=timedelta(minutes=30),
            notify=["senior DevOps", "incident commander"],
            message="Unresolved after 30 minutes: consider maintenance mode",
            offer_maintenance=True,
        ),
    ]


class Communication(Section):
    """The runbook's cadence: escalate at 5/15/30 minutes, a status update every 10."""

    escalation: list[EscalationLevel] = Field(default_factory=_default_levels)
    status_every: Duration = timedelta(minutes=10)
    severity: str = Field(default="critical", description="when no alert carries a severity")
    notify_timeout: Duration = timedelta(minutes=2)


class Policy(Section):
    thresholds: Thresholds = Field(default_factory=Thresholds)
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    limits: Limits = Field(default_factory=Limits)
    recovery: Recovery = Field(default_factory=Recovery)
    outage: Outage = Field(default_factory=Outage)
    communication: Communication = Field(default_factory=Communication)


class RunbookConfig(BaseModel):
    """What a workflow needs from the worker that runs it: the policy, and which steps this
    worker can actually perform (a worker without Kubernetes access cannot restart a pod)."""

    policy: Policy = Field(default_factory=Policy)
    available_steps: list[StepName] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list, description="notification channel names")
    paging: list[str] = Field(
        default_factory=list, description="channels that page (only escalations name them)"
    )
    target: RedisTarget | None = Field(
        default=None,
        description="the configured target the incident is about, as the worker knows it "
        "(absent only in histories recorded before targets were checked)",
    )
    maintenance: str | None = Field(
        default=None, description="how this target goes into maintenance mode, if it can"
    )


class PolicyActivities:
    """Hands the worker's configuration to workflows, which must not read files, and refuses
    a target the worker was not configured for before anything contacts it."""

    def __init__(self, config: RunbookConfig, targets: TargetBook) -> None:
        self._config = config
        self._targets = targets

    @activity.defn(name="runbook_config")
    async def runbook_config(self, target: RedisTarget) -> RunbookConfig:
        found = self._targets.find(target)
        mode = found.workload.maintenance
        return self._config.model_copy(
            update={"target": found.target, "maintenance": mode.describe() if mode else None}
        )
