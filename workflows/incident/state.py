"""The incident's working memory, shared by the parts of the workflow.

A Temporal workflow is one object whose handlers all see one state, so the parts (the approval
gate, the probes and conditions, communication, continue-as-new) are mixins over this class
rather than separate objects passing the same fields around. Nothing here calls an activity.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.notifications.models import NotificationKind
    from activities.policy import RunbookConfig
    from contracts.analysis import Analysis
    from contracts.decisions import Abort, Decision, PendingApproval
    from contracts.diagnosis import Diagnosis, Scenario
    from contracts.incident import Incident, Outcome, Phase, TimelineEntry
    from contracts.steps import Step, StepName, StepStatus
    from contracts.target import RedisTarget
    from workflows.incident.alerts import AlertLedger
    from workflows.runbook.approvals import ApprovalBook, Verdict
    from workflows.runbook.classify import Context, explain


TIMELINE_HEAD = 50
TIMELINE_TAIL = 250


class IncidentState:
    def __init__(self, incident: Incident) -> None:
        self._incident = incident
        self._phase: Phase = "triage"
        self._scenario: Scenario | None = None
        self._reasons: list[str] = []
        self._plan: list[Step] = []
        self._current: StepName | None = None
        self._pending: dict[StepName, PendingApproval] = {}
        self._timeline: list[TimelineEntry] = []
        self._omitted = 0
        self._alerts = AlertLedger.of(incident.alerts)
        self._book: ApprovalBook | None = None
        self._inbox: list[Decision] = []
        self._problems: list[str] = []
        self._analysis = Analysis()
        self._config = RunbookConfig()
        self._triage: Diagnosis | None = None
        self._latest: Diagnosis | None = None
        self._previous: Diagnosis | None = None
        self._approval_wait_s = 0.0
        self._ready: bool | None = None
        self._answered: bool | None = None
        self._original_replicas: int | None = None
        self._started = workflow.now()
        self._outcome: Outcome | None = None
        self._abort: Abort | None = None
        self._stand_down = False
        self._withdrawn: dict[StepName, str] = {}
        self._timers: list[asyncio.Task[None]] = []
        self._deliveries: list[asyncio.Task[None]] = []
        self._runs = 1
        self._escalations_sent = 0
        self._pending_since: dict[StepName, datetime] = {}
        self._index = 1
        self._flaps = 0
        self._legacy_judgement = False

    # ---- provided by the parts (declared here so each part can call the others) -------------

    async def _diagnose(self) -> Diagnosis:
        raise NotImplementedError

    async def _continue_as_new(self) -> None:
        raise NotImplementedError

    def _cache_given_back(self) -> bool:
        raise NotImplementedError

    def _flapped(self) -> bool:
        raise NotImplementedError

    def _submit(self, decision: Decision) -> Verdict:
        raise NotImplementedError

    def _notify(
        self, kind: NotificationKind, title: str, recipients: list[str] | None = None
    ) -> None:
        raise NotImplementedError

    # ---- bookkeeping ------------------------------------------------------------------------

    @property
    def _target(self) -> RedisTarget:
        """The target as the worker's configuration has it (checked by `runbook_config`);
        the input's own only in histories recorded before targets were checked."""
        return self._config.target or self._incident.target

    def _judged(self, diagnosis: Diagnosis, since: Diagnosis | None = None) -> Context:
        """What the judgement rules see: the diagnosis, the policy, the incident's alerts."""
        return Context(
            diagnosis,
            self._config.policy.thresholds,
            since,
            alerts=tuple(self._alerts.firing_names()),
            legacy=self._legacy_judgement,
        )

    def _explain(
        self, diagnosis: Diagnosis, since: Diagnosis | None = None
    ) -> list[tuple[Scenario, str]]:
        c = self._judged(diagnosis, since)
        return explain(c.d, c.t, c.since, c.alerts, c.legacy)

    def _history_too_long(self) -> bool:
        info = workflow.info()
        limit = self._config.policy.limits.history_events
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _done_steps(self) -> set[StepName]:
        return {s.name for s in self._plan if s.status == "succeeded"}

    def _latest_succeeded(self, name: StepName) -> bool:
        """Whether the most recent step of that name so far succeeded (a flap repeats steps:
        the fallback that counts is the one of the current round)."""
        so_far = [s for s in self._plan[: self._index + 1] if s.name is name]
        return bool(so_far) and so_far[-1].status == "succeeded"

    def _scenario_name(self) -> str:
        return self._scenario.value if self._scenario else "investigating"

    def _skip(self, step: Step, reason: str) -> None:
        self._mark(step, "skipped", workflow.now(), detail=reason)

    def _mark(self, step: Step, status: StepStatus, began: datetime, detail: str) -> None:
        step.status, step.started_at, step.finished_at = status, began, workflow.now()
        step.detail = detail
        self._note("step", f"{step.name.value}: {status}: {detail}")

    def _note(self, kind: str, message: str, actor: str | None = None) -> None:
        """Bounded: the first TIMELINE_HEAD entries and the latest TIMELINE_TAIL are kept, with
        one 'omitted' entry between them counting the rest (it is all carried, and returned)."""
        now = workflow.now()
        self._timeline.append(TimelineEntry(at=now, kind=kind, message=message, actor=actor))
        if len(self._timeline) <= TIMELINE_HEAD + 1 + TIMELINE_TAIL:
            return
        if self._timeline[TIMELINE_HEAD].kind != "omitted":
            self._timeline.insert(TIMELINE_HEAD, TimelineEntry(at=now, kind="omitted", message=""))
        while len(self._timeline) > TIMELINE_HEAD + 1 + TIMELINE_TAIL:
            del self._timeline[TIMELINE_HEAD + 1]
            self._omitted += 1
        marker = self._timeline[TIMELINE_HEAD]
        marker.at = self._timeline[TIMELINE_HEAD + 1].at
        marker.message = f"{self._omitted} entries omitted (the history has them all)"
