"""The workflow's input, its status query and its result, and the workflow type they belong to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.alerts import Alert, AlertSummary
from contracts.analysis import Analysis
from contracts.base import Contract
from contracts.decisions import Approval, PendingApproval
from contracts.diagnosis import Diagnosis, Scenario
from contracts.steps import Step, StepName
from contracts.target import RedisTarget

# The workflow type, a public contract: the CLI and the webhook name it without importing the
# workflow (and with it every activity and client library).
WORKFLOW_TYPE = "RedisCacheFailure"


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
    incident_run: str = Field(
        default="", description="the incident's first run id: a decision names it"
    )
    plan_digest: str = Field(default="", description="the plan as shown: a decision names it")


class Sample(BaseModel):
    """What one diagnosis measured, for the review's charts."""

    at: datetime
    reachable: bool
    memory_ratio: float | None = Field(default=None, description="used_memory / maxmemory")
    clients: int | None = None
    hit_rate: float | None = Field(default=None, description="since Redis started")
    ping_p50_ms: float | None = None

    @classmethod
    def of(cls, d: Diagnosis) -> Sample:
        info = d.info if d.reachable else None
        return cls(
            at=d.taken_at,
            reachable=d.reachable,
            memory_ratio=info.memory_ratio if info else None,
            clients=info.connected_clients if info else None,
            hit_rate=info.hit_rate if info else None,
            ping_p50_ms=d.ping_p50_ms,
        )


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
    samples: list[Sample] = Field(
        default_factory=list, description="each diagnosis' figures, oldest first (the charts)"
    )
    started_at: datetime
    finished_at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "scenario": self.scenario.value,
            "outcome": self.outcome,
            "steps": [s.name.value for s in self.steps],
        }
