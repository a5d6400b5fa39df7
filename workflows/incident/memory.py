"""Everything an incident remembers, in one model: what its parts read and write, and what a
long incident carries whole into its next run (continue-as-new, in Incident.carried).

Each field is declared here and nowhere else. Fields marked `exclude` belong to one run: the
configuration it read (the policy is never carried, every run reads it afresh), the input it
was given, the approval book opened over the carried approvals, and facts about the moment
(the last PING's answer, the pending requests rebuilt from `pending_since`). They are left out
of what is carried, so a continued run starts them anew, as before this model existed.

What is carried is trusted only when Temporal says the run continued from the run that wrote it
(`from_run_id`); see carry.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from temporalio import workflow

from activities.policy import RunbookConfig
from contracts.alerts import Alert
from contracts.analysis import Analysis
from contracts.decisions import Abort, Approval, Decision, PendingApproval
from contracts.diagnosis import Diagnosis, Scenario
from contracts.incident import Incident, Outcome, Phase, Sample, TimelineEntry
from contracts.steps import Step, StepName, StepStatus
from contracts.target import RedisTarget
from workflows.incident.alerts import AlertLedger
from workflows.runbook.approvals import ApprovalBook, State
from workflows.runbook.classify import Context, explain

MaintenanceState = Literal["none", "offered", "on", "off", "declined", "stuck"]
SAMPLES_KEPT = 300  # a poll every 10 s for 50 minutes
TIMELINE_HEAD = 50
TIMELINE_TAIL = 250


def _run_only(*default: Any, **kwargs: Any) -> Any:
    """A field of one run: read where an old history carried it, never carried on."""
    return Field(*default, exclude=True, **kwargs)


class IncidentMemory(BaseModel):
    # ---- carried into the next run ------------------------------------------------------
    from_run_id: str | None = Field(
        default=None, description="the run that continued as new; absent only in old histories"
    )
    runs: int = 1
    started_at: datetime
    scenario: Scenario | None = None
    reasons: list[str] = Field(default_factory=list)
    plan: list[Step] = Field(default_factory=list)
    next_step: int = Field(default=1, ge=1, description="index in plan of the step to (re)enter")
    timeline: list[TimelineEntry] = Field(default_factory=list)
    timeline_omitted: int = 0
    ledger: AlertLedger = Field(default_factory=AlertLedger)
    approvals: list[Approval] = Field(default_factory=list)
    closed: dict[StepName, State] = Field(default_factory=dict)
    withdrawn: dict[StepName, str] = Field(default_factory=dict)
    pending_since: dict[StepName, datetime] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    triage: Diagnosis | None = None
    latest: Diagnosis | None = None
    approval_wait_s: float = 0.0
    original_replicas: int | None = None
    ready: bool | None = None
    stand_down: bool = False
    abort: Abort | None = None
    escalations_sent: int = 0
    paged: list[str] = Field(default_factory=list, description="paging channels triggered")
    flaps: int = 0
    samples: list[Sample] = Field(
        default_factory=list, description="each diagnosis' figures, the latest SAMPLES_KEPT"
    )
    maintenance: MaintenanceState = Field(
        default="none", description="maintenance mode: offered by an escalation, then on/off"
    )
    # ---- this run only ------------------------------------------------------------------
    config: RunbookConfig = _run_only(
        default_factory=RunbookConfig,
        description="the worker's, read by this run; taken from the input only when replaying "
        "histories from before it stopped being carried",
    )
    incident: Incident | None = _run_only(None, description="this run's input")
    legacy_judgement: bool = _run_only(False)
    local_reads: bool = _run_only(False, description="diagnose and inspect as local activities")
    offers_maintenance: bool = _run_only(False, description="an escalation may offer it")
    phase: Phase = _run_only("triage")
    current: StepName | None = _run_only(None)
    pending: dict[StepName, PendingApproval] = _run_only(default_factory=dict)
    inbox: list[Decision] = _run_only(
        default_factory=list, description="decisions that came before the plan"
    )
    book: ApprovalBook | None = _run_only(None)
    answered: bool | None = _run_only(None, description="the last PING step's answer")
    previous: Diagnosis | None = _run_only(None, description="the diagnosis before `latest`")
    outcome: Outcome | None = _run_only(None)

    @model_validator(mode="before")
    @classmethod
    def _old_shapes(cls, raw: Any) -> Any:
        """Histories from before the ledger carried the alerts as a plain list, and from
        before the config stopped being carried (null since)."""
        if not isinstance(raw, dict):
            return raw
        raw = {k: v for k, v in raw.items() if not (k == "config" and v is None)}
        if "alerts" not in raw:
            return raw
        alerts = raw.pop("alerts") or []
        if raw.get("ledger") is None:
            raw["ledger"] = AlertLedger.of([Alert.model_validate(a) for a in alerts])
        return raw

    @classmethod
    def fresh(cls, incident: Incident) -> IncidentMemory:
        return cls(
            started_at=workflow.now(), incident=incident, ledger=AlertLedger.of(incident.alerts)
        )

    def carried(self) -> dict[str, Any]:
        """What the next run receives: the carried fields, naming this run as their source."""
        run_id = workflow.info().run_id
        onward = self.model_copy(update={"from_run_id": run_id, "runs": self.runs + 1})
        return onward.model_dump(mode="json")

    # ---- reading ------------------------------------------------------------------------

    @property
    def input(self) -> Incident:
        assert self.incident is not None, "set when the workflow is built"
        return self.incident

    @property
    def target(self) -> RedisTarget:
        """The target as the worker's configuration has it (checked by `runbook_config`);
        the input's own only in histories recorded before targets were checked."""
        return self.config.target or self.input.target

    def judged(self, diagnosis: Diagnosis, since: Diagnosis | None = None) -> Context:
        """What the judgement rules see: the diagnosis, the policy, the incident's alerts."""
        return Context(
            diagnosis,
            self.config.policy.thresholds,
            since,
            alerts=tuple(self.ledger.firing_names()),
            legacy=self.legacy_judgement,
        )

    def explain(
        self, diagnosis: Diagnosis, since: Diagnosis | None = None
    ) -> list[tuple[Scenario, str]]:
        c = self.judged(diagnosis, since)
        return explain(c.d, c.t, c.since, c.alerts, c.legacy)

    def history_too_long(self) -> bool:
        info = workflow.info()
        limit = self.config.policy.limits.history_events
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def last_planned(self) -> Step:
        """The plan's own last step (the verification), past the steps added beside it."""
        return next(s for s in reversed(self.plan) if not s.offered)

    def done_steps(self) -> set[StepName]:
        return {s.name for s in self.plan if s.status == "succeeded"}

    def latest_succeeded(self, name: StepName) -> bool:
        """Whether the most recent step of that name so far succeeded (a flap repeats steps:
        the fallback that counts is the one of the current round)."""
        so_far = [s for s in self.plan[: self.next_step + 1] if s.name is name]
        return bool(so_far) and so_far[-1].status == "succeeded"

    def cache_given_back(self) -> bool:
        """Whether, since the latest fallback was entered, the API got its cache back."""
        so_far = self.plan[: self.next_step + 1]
        entered = [
            i
            for i, s in enumerate(so_far)
            if s.name is StepName.ENABLE_FALLBACK and s.status == "succeeded"
        ]
        return bool(entered) and any(
            s.name is StepName.RE_ENABLE and s.status == "succeeded" for s in so_far[entered[-1] :]
        )

    def fallback_left_on(self) -> bool:
        """A fallback was entered and the cache not given back: the incident leaves it on."""
        done = [s for s in self.plan if s.status == "succeeded"]
        entered = [i for i, s in enumerate(done) if s.name is StepName.ENABLE_FALLBACK]
        return bool(entered) and not any(s.name is StepName.RE_ENABLE for s in done[entered[-1] :])

    def scenario_name(self) -> str:
        return self.scenario.value if self.scenario else "investigating"

    # ---- recording ----------------------------------------------------------------------

    def skip(self, step: Step, reason: str) -> None:
        self.mark(step, "skipped", workflow.now(), detail=reason)

    def mark(self, step: Step, status: StepStatus, began: datetime, detail: str) -> None:
        step.status, step.started_at, step.finished_at = status, began, workflow.now()
        step.detail = detail
        self.note("step", f"{step.name.value}: {status}: {detail}")

    def sampled(self, diagnosis: Diagnosis) -> None:
        """Bounded: the latest SAMPLES_KEPT (a long outage polls for hours)."""
        self.samples.append(Sample.of(diagnosis))
        del self.samples[:-SAMPLES_KEPT]

    def note(self, kind: str, message: str, actor: str | None = None) -> None:
        """Bounded: the first TIMELINE_HEAD entries and the latest TIMELINE_TAIL are kept, with
        one 'omitted' entry between them counting the rest (it is all carried, and returned)."""
        now = workflow.now()
        self.timeline.append(TimelineEntry(at=now, kind=kind, message=message, actor=actor))
        if len(self.timeline) <= TIMELINE_HEAD + 1 + TIMELINE_TAIL:
            return
        if self.timeline[TIMELINE_HEAD].kind != "omitted":
            self.timeline.insert(TIMELINE_HEAD, TimelineEntry(at=now, kind="omitted", message=""))
        while len(self.timeline) > TIMELINE_HEAD + 1 + TIMELINE_TAIL:
            del self.timeline[TIMELINE_HEAD + 1]
            self.timeline_omitted += 1
        marker = self.timeline[TIMELINE_HEAD]
        marker.at = self.timeline[TIMELINE_HEAD + 1].at
        marker.message = f"{self.timeline_omitted} entries omitted (the history has them all)"
