"""Communication: escalation levels and status updates on durable timers, and notifications
sent fire-and-forget per channel, so a channel that is down never holds up a step."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notifications.models import NotificationKind
    from activities.policy import EscalationLevel
    from contracts.incident import Mode
    from workflows.incident import retries
    from workflows.incident.errors import cause_of
    from workflows.incident.state import IncidentState
    from workflows.runbook.messages import notification


class IncidentCommunication(IncidentState):
    def _start_timers(self) -> None:
        self._timers = [
            asyncio.create_task(self._escalations()),
            asyncio.create_task(self._status_updates()),
        ]

    async def _escalations(self) -> None:
        """Durable timers from the incident's start; cancelled when the incident ends."""
        levels = self._config.policy.communication.escalation
        for level in levels[self._escalations_sent :]:
            delay = (self._started + level.after) - workflow.now()
            if delay.total_seconds() > 0:
                await workflow.sleep(delay)
            self._escalations_sent += 1
            self._escalate(level)

    def _escalate(self, level: EscalationLevel) -> None:
        who = ", ".join(level.notify)
        self._note("escalation", f"{level.message} -> {who}")
        self._notify("escalation", level.message, recipients=level.notify)

    async def _status_updates(self) -> None:
        every = self._config.policy.communication.status_every
        while True:
            await workflow.sleep(every)
            self._notify("status_update", f"Redis cache incident: {self._scenario_name()}")

    def _notify(
        self, kind: NotificationKind, title: str, recipients: list[str] | None = None
    ) -> None:
        """Fire and forget, per channel: a channel that is down never holds up a step."""
        policy = self._config.policy
        message = notification(
            workflow_id=workflow.info().workflow_id,
            kind=kind,
            title=title,
            started=self._started,
            now=workflow.now(),
            phase=self._phase,
            outcome=self._outcome,
            scenario=self._scenario,
            plan=self._plan,
            pending=list(self._pending.values()),
            alerts=self._alerts.alerts(),
            severity=policy.communication.severity,
            approval_timeout=policy.approvals.timeout,
            recipients=recipients,
        )
        for channel in self._config.channels:
            self._deliveries.append(asyncio.create_task(self._deliver(channel, message)))

    async def _deliver(self, channel: str, message: Any) -> None:
        try:
            await workflow.execute_activity(
                "notify",
                args=[channel, message],
                schedule_to_close_timeout=self._config.policy.communication.notify_timeout,
                retry_policy=retries.NOTIFY.retry,
                result_type=str,
            )
        except ActivityError as err:
            self._note("notification_failed", f"{message.kind} to {channel}: {cause_of(err)}")
            return
        self._note("notified", f"{message.kind} to {channel}")

    async def _close_communication(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._incident.mode is Mode.AUTO:
            self._notify("final", f"Redis cache incident {self._outcome}: {self._scenario_name()}")
        await asyncio.gather(*self._deliveries, return_exceptions=True)
