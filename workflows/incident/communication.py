"""Communication: escalation levels and status updates on durable timers, and notifications
sent fire-and-forget per channel, so a channel that is down never holds up a step."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notifications.channels import NotificationActivities
    from activities.notifications.models import Notification, NotificationKind
    from activities.policy import EscalationLevel
    from contracts.incident import Mode
    from contracts.steps import StepName
    from workflows.incident import retries
    from workflows.incident.errors import cause_of
    from workflows.incident.memory import IncidentMemory
    from workflows.incident.metrics import IncidentMetrics
    from workflows.runbook.messages import notification


class Communication:
    def __init__(self, memory: IncidentMemory, metrics: IncidentMetrics) -> None:
        self._memory = memory
        self._metrics = metrics
        self._timers: list[asyncio.Task[None]] = []
        self._deliveries: list[asyncio.Task[None]] = []

    def start_timers(self) -> None:
        self._timers = [
            asyncio.create_task(self._escalations()),
            asyncio.create_task(self._status_updates()),
        ]

    async def _escalations(self) -> None:
        """Durable timers from the incident's start; cancelled when the incident ends."""
        m = self._memory
        levels = m.config.policy.communication.escalation
        for level in levels[m.escalations_sent :]:
            delay = (m.started_at + level.after) - workflow.now()
            if delay.total_seconds() > 0:
                await workflow.sleep(delay)
            m.escalations_sent += 1
            self._metrics.escalated(m.escalations_sent)
            self._escalate(level)

    def _escalate(self, level: EscalationLevel) -> None:
        m = self._memory
        who = ", ".join(level.notify)
        message = level.message + self._offer(level)
        m.note("escalation", f"{message} -> {who}")
        self.notify("escalation", message, recipients=level.notify)
        pages = [name for name in level.page if name in m.config.paging]
        if pages:
            m.paged += [name for name in pages if name not in m.paged]
            self.notify("escalation", message, recipients=level.notify, channels=pages)

    def _offer(self, level: EscalationLevel) -> str:
        """Maintenance mode, offered once, where the level offers it and the target has it;
        its own task (maintenance.py) asks for the approval and runs it."""
        m = self._memory
        if not (level.offer_maintenance and m.offers_maintenance and m.config.maintenance):
            return ""
        if m.maintenance != "none" or StepName.MAINTENANCE_MODE not in m.config.available_steps:
            return ""
        m.maintenance = "offered"
        return f"; maintenance mode offered ({m.config.maintenance}): approve maintenance_mode"

    async def _status_updates(self) -> None:
        every = self._memory.config.policy.communication.status_every
        while True:
            await workflow.sleep(every)
            self.notify("status_update", f"Redis cache incident: {self._memory.scenario_name()}")

    def notify(
        self,
        kind: NotificationKind,
        title: str,
        recipients: list[str] | None = None,
        channels: list[str] | None = None,
    ) -> None:
        """Fire and forget, per channel: a channel that is down never holds up a step.
        `channels`: these (the paging ones) instead of the broadcast channels."""
        m = self._memory
        policy = m.config.policy
        message = notification(
            workflow_id=workflow.info().workflow_id,
            kind=kind,
            title=title,
            started=m.started_at,
            now=workflow.now(),
            phase=m.phase,
            outcome=m.outcome,
            scenario=m.scenario,
            plan=m.plan,
            pending=list(m.pending.values()),
            alerts=m.ledger.alerts(),
            severity=policy.communication.severity,
            approval_timeout=policy.approvals.timeout,
            recipients=recipients,
            incident_run=workflow.info().first_execution_run_id,
            status_every=policy.communication.status_every,
        )
        for channel in m.config.channels if channels is None else channels:
            self._deliveries.append(asyncio.create_task(self._deliver(channel, message)))

    async def _deliver(self, channel: str, message: Notification) -> None:
        try:
            await workflow.execute_activity_method(
                NotificationActivities.notify,
                args=[channel, message],
                schedule_to_close_timeout=self._memory.config.policy.communication.notify_timeout,
                retry_policy=retries.NOTIFY.retry,
            )
        except ActivityError as err:
            self._memory.note(
                "notification_failed", f"{message.kind} to {channel}: {cause_of(err)}"
            )
            return
        self._memory.note("notified", f"{message.kind} to {channel}")

    async def stop(self) -> None:
        """Timers cancelled, every message on its way delivered (or given up)."""
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)

    async def close(self) -> None:
        """The end of the incident: the final message (auto mode), then stop."""
        for timer in self._timers:
            timer.cancel()
        title = f"Redis cache incident {self._memory.outcome}: {self._memory.scenario_name()}"
        if self._memory.input.mode is Mode.AUTO:
            self.notify("final", title)
        if self._memory.paged:  # resolved, or left open with the final word
            self.notify("final", title, channels=list(self._memory.paged))
        await self.stop()
