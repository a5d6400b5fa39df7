"""Runbook steps: their names, the conditions they run under, and what each one did (the
common result every remediation activity returns)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class StepResult(BaseModel):
    """What a step did, for the report: whether it changed anything, and the values around it."""

    changed: bool
    summary: str
    before: dict[str, str | int | float | None] = Field(default_factory=dict)
    after: dict[str, str | int | float | None] = Field(default_factory=dict)


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
    MAINTENANCE_MODE = "maintenance_mode"
    END_MAINTENANCE = "end_maintenance"
    # a Sentinel-managed group
    WAIT_FAILOVER = "wait_failover"
    SENTINEL_FAILOVER = "sentinel_failover"
    VERIFY_WRITES = "verify_writes"
    VERIFY_CLIENTS = "verify_clients"
    RESTART_REPLICA = "restart_replica"


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
    FAILED_OVER = "failed_over"


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
    offered: bool = Field(
        default=False,
        description="added during the incident (maintenance mode, offered by an escalation) "
        "and run beside the plan's order, not in it",
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str | None = None
    result: StepResult | None = None
