"""What an incident carries into its next run when its history grows long (continue-as-new).

Set by the workflow itself in Incident.carried; a run accepts it only when Temporal says the run
was continued from the very run that wrote it (`from_run_id`), so a hand-started workflow cannot
smuggle a plan or approvals in. The policy is not carried: every run reads it from the worker.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from activities.policy import RunbookConfig
from contracts.alerts import Alert
from contracts.analysis import Analysis
from contracts.decisions import Abort, Approval
from contracts.diagnosis import Diagnosis, Scenario
from contracts.incident import TimelineEntry
from contracts.steps import Step, StepName
from workflows.incident.alerts import AlertLedger


class CarriedState(BaseModel):
    from_run_id: str | None = Field(
        default=None, description="the run that continued as new; absent only in old histories"
    )
    runs: int = 1
    started_at: datetime
    config: RunbookConfig | None = Field(
        default=None, description="read only when replaying histories from before it was dropped"
    )
    scenario: Scenario
    reasons: list[str] = Field(default_factory=list)
    plan: list[Step]
    next_step: int = Field(ge=1, description="index in plan of the step to (re)enter")
    timeline: list[TimelineEntry] = Field(default_factory=list)
    timeline_omitted: int = 0
    alerts: list[Alert] = Field(default_factory=list, description="old histories only")
    ledger: AlertLedger | None = None
    approvals: list[Approval] = Field(default_factory=list)
    closed: dict[StepName, str] = Field(default_factory=dict)
    withdrawn: dict[StepName, str] = Field(default_factory=dict)
    pending_since: dict[StepName, datetime] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    triage: Diagnosis
    latest: Diagnosis | None = None
    approval_wait_s: float = 0.0
    original_replicas: int | None = None
    ready: bool | None = None
    stand_down: bool = False
    abort: Abort | None = None
    escalations_sent: int = 0
    flaps: int = 0
