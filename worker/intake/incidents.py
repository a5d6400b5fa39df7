"""From normalised alerts to incidents: route each alert to its Redis target, and record it in
that target's one workflow with signal-with-start (id-conflict policy USE_EXISTING), so an
alert storm lands in one incident.

A delivery is answered 200 only when every alert in it is recorded (or deliberately not: no
target matches, or a resolved alert has no open incident to resolve). Anything else raises
TemporalUnavailable and the HTTP layer answers 503, so the source retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts.alerts import Alert, AlertStatus
from contracts.incident import WORKFLOW_TYPE, Incident
from contracts.target import RedisTarget
from worker.client import connect
from worker.intake.dedupe import Key, RecentAlerts, RecentDeliveries, Replay
from worker.intake.metrics import WebhookMetrics
from worker.intake.routing import Route, Router
from worker.intake.sources import Delivery
from worker.settings.runbook import Settings, TemporalSettings

log = logging.getLogger("runbook.webhook")

ALERT_SIGNAL = "alert"
RECONNECT_PAUSE = 1.0  # seconds between connection attempts while Temporal is away


class TemporalUnavailable(Exception):
    """Temporal did not take the alert: answer 503 so the sender retries."""


class IncidentOutcome(BaseModel):
    target: str = Field(description="name of the target route that matched")
    workflow_id: str
    alerts: list[str] = Field(description="fingerprints of the alerts for this target")
    started: bool = Field(description="this delivery opened the incident")
    signalled: int = Field(description="alerts sent to the workflow by this delivery")
    duplicates: int = Field(description="alerts recorded recently, not sent again")
    ignored: int = Field(default=0, description="resolved alerts with no open incident")


class UnroutedAlert(BaseModel):
    fingerprint: str
    name: str
    reason: str


Outcome = Literal["recorded", "duplicate", "unrouted", "ignored"]


class DeliveryResult(BaseModel):
    """The answer to a delivery that was taken (HTTP 200)."""

    source: str
    outcome: Outcome
    alerts: int
    incidents: list[IncidentOutcome] = Field(default_factory=list)
    unrouted: list[UnroutedAlert] = Field(default_factory=list)
    truncated_alerts: int = 0
    reason: str | None = None


class ErrorBody(BaseModel):
    """The answer to a delivery that was refused (4xx) or not recorded (503)."""

    error: str
    reason: str


Connector = Callable[[TemporalSettings], Awaitable[Client]]


class TemporalGateway:
    """The app's one Temporal client, connected on first need and again after a failure, so
    the webhook starts (and answers 503) while Temporal is down instead of crashing."""

    def __init__(
        self, settings: TemporalSettings, timeout: timedelta, connector: Connector = connect
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self._connector = connector
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._failed_at = float("-inf")
        self._failure = ""

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() - self._failed_at < RECONNECT_PAUSE:
                raise TemporalUnavailable(self._failure)
            try:
                self._client = await asyncio.wait_for(
                    self._connector(self.settings), self.timeout.total_seconds()
                )
            except (RuntimeError, OSError, TimeoutError) as err:
                self._failed_at = time.monotonic()
                self._failure = (
                    f"cannot reach Temporal at {self.settings.address}: {err or 'timeout'}"
                )
                raise TemporalUnavailable(self._failure) from None
            return self._client

    async def ready(self) -> str | None:
        """None when Temporal answers, else why not."""
        try:
            client = await self.client()
            await asyncio.wait_for(
                client.service_client.check_health(), self.timeout.total_seconds()
            )
        except TemporalUnavailable as err:
            return str(err)
        except (RPCError, RuntimeError, TimeoutError) as err:
            return f"Temporal at {self.settings.address} does not answer: {err or 'timeout'}"
        return None


@dataclass
class _Batch:
    route: Route
    alerts: list[Alert] = field(default_factory=list)


class Intake:
    """Routes and records alerts; owns nothing global, everything comes in by argument."""

    def __init__(
        self,
        settings: Settings,
        gateway: TemporalGateway,
        recent: RecentAlerts,
        metrics: WebhookMetrics,
    ) -> None:
        self._settings = settings
        self._gateway = gateway
        self._recent = recent
        self._metrics = metrics
        self._router = Router(settings.targets)
        self._deliveries = RecentDeliveries(
            recent, min(settings.webhook.dedupe_max_entries, 10_000)
        )

    def replay(self, source: str, body: bytes) -> bytes | None:
        """The answer to a byte-identical repeat whose alerts are all still recent, or None."""
        found = self._deliveries.get(RecentDeliveries.digest(source, body))
        if found is None:
            return None
        for action, count in (("duplicate", found.duplicates), ("unrouted", found.unrouted)):
            if count:
                self._metrics.alerts.labels(source, action).inc(count)
        if found.truncated:
            self._metrics.truncated.labels(source).inc(found.truncated)
        return found.answer

    def route(self, alerts: list[Alert]) -> tuple[dict[str, _Batch], list[UnroutedAlert]]:
        """First matching target wins; batches are keyed by workflow id (two routes to the same
        Redis share one incident)."""
        batches: dict[str, _Batch] = {}
        unrouted: list[UnroutedAlert] = []
        for alert in alerts:
            route = self._router.route(alert.labels)
            if route is None:
                reason = "no target in the config matches its labels"
                unrouted.append(
                    UnroutedAlert(fingerprint=alert.fingerprint, name=alert.name, reason=reason)
                )
                continue
            batches.setdefault(route.target.workflow_id, _Batch(route)).alerts.append(alert)
        return batches, unrouted

    async def record(self, delivery: Delivery, body: bytes | None = None) -> DeliveryResult:
        """Record every routed alert; with `body`, remember the answer for its repeats."""
        source = delivery.source.value
        if delivery.truncated_alerts:
            self._metrics.truncated.labels(source).inc(delivery.truncated_alerts)
        if delivery.ignored_reason is not None or not delivery.alerts:
            reason = delivery.ignored_reason or "the delivery carries no alerts"
            return DeliveryResult(
                source=source, outcome="ignored", alerts=0, reason=reason,
                truncated_alerts=delivery.truncated_alerts,
            )  # fmt: skip
        batches, unrouted = self.route(delivery.alerts)
        outcomes = await asyncio.gather(
            *(self._record_batch(source, wid, batch) for wid, batch in batches.items()),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            if isinstance(failures[0], TemporalUnavailable):
                raise failures[0]
            raise TemporalUnavailable(f"Temporal did not take the alerts: {failures[0]}")
        incidents = [o for o in outcomes if isinstance(o, IncidentOutcome)]
        self._metrics.alerts.labels(source, "unrouted").inc(len(unrouted))
        self._metrics.dedupe_entries.set(len(self._recent))
        result = DeliveryResult(
            source=source,
            outcome=_outcome(incidents, unrouted),
            alerts=len(delivery.alerts),
            incidents=incidents,
            unrouted=unrouted,
            truncated_alerts=delivery.truncated_alerts,
            reason=None if incidents else "no target in the config matches these alerts",
        )
        if body is not None:
            keys = tuple(
                (wid, a.fingerprint, a.status.value) for wid, b in batches.items() for a in b.alerts
            )
            self._deliveries.put(RecentDeliveries.digest(source, body), _replay(result, keys))
        return result

    async def _record_batch(self, source: str, workflow_id: str, batch: _Batch) -> IncidentOutcome:
        """Send the alerts not recorded lately; wait for those another request is sending."""
        by_key: dict[Key, Alert] = {}
        for alert in batch.alerts:
            by_key.setdefault((workflow_id, alert.fingerprint, alert.status.value), alert)
        claim = self._recent.claim(by_key)
        opens = any(a.status is AlertStatus.FIRING for a in batch.alerts)
        try:
            sent = await asyncio.gather(
                *(self._send(batch.route.target, by_key[key], source, opens) for key in claim.new),
                return_exceptions=True,
            )
        except BaseException:  # cancelled: release the keys, or waiters would hang
            self._recent.settle(claim.new, recorded=False)
            raise
        for key, result in zip(claim.new, sent, strict=True):
            self._recent.settle([key], recorded=not isinstance(result, BaseException))
        errors = [r for r in sent if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if claim.pending and not all(await asyncio.gather(*claim.pending)):
            raise TemporalUnavailable("a concurrent delivery of these alerts was not recorded")
        started = sum(1 for r in sent if r == "started")
        ignored = sum(1 for r in sent if r == "ignored")
        duplicates = len(claim.recent) + len(claim.pending)
        for action, count in (
            ("started", started),
            ("signalled", len(sent) - started - ignored),
            ("ignored", ignored),
            ("duplicate", duplicates),
        ):
            if count:
                self._metrics.alerts.labels(source, action).inc(count)
        return IncidentOutcome(
            target=batch.route.name,
            workflow_id=workflow_id,
            alerts=list(dict.fromkeys(a.fingerprint for a in batch.alerts)),
            started=started > 0,
            signalled=len(sent) - ignored,
            duplicates=duplicates,
            ignored=ignored,
        )

    async def _send(self, target: RedisTarget, alert: Alert, source: str, opens: bool) -> str:
        """Signal-with-start when the batch has a firing alert; a batch of resolved alerts only
        signals, so a resolution never opens (and remediates) a new incident."""
        client = await self._gateway.client()
        timeout = self._gateway.timeout
        began = time.perf_counter()
        call = "signal_with_start" if opens else "signal"
        try:
            if not opens:
                handle = client.get_workflow_handle(target.workflow_id)
                await asyncio.wait_for(
                    handle.signal(ALERT_SIGNAL, alert, rpc_timeout=timeout),
                    timeout.total_seconds(),
                )
                return "signalled"
            incident = Incident(
                target=target,
                mode=self._settings.webhook.mode,
                alerts=[],
                requested_by=source,
            )
            handle = await asyncio.wait_for(
                client.start_workflow(
                    WORKFLOW_TYPE,
                    incident,
                    id=target.workflow_id,
                    task_queue=self._gateway.settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    start_signal=ALERT_SIGNAL,
                    start_signal_args=[alert],
                    rpc_timeout=timeout,
                ),
                timeout.total_seconds(),
            )
        except RPCError as err:
            if not opens and err.status is RPCStatusCode.NOT_FOUND:
                return "ignored"
            raise TemporalUnavailable(f"Temporal refused the alert: {err.message}") from None
        except TimeoutError:
            raise TemporalUnavailable(f"Temporal did not answer within {timeout}") from None
        finally:
            self._metrics.temporal_latency.labels(call).observe(time.perf_counter() - began)
        # The SDK keeps the server's answer; `started` says whether this call opened the run.
        response = getattr(handle, "_start_workflow_response", None)
        if getattr(response, "started", False):
            log.info("opened incident %s (%s from %s)", target.workflow_id, alert.name, source)
            return "started"
        return "signalled"


def _replay(result: DeliveryResult, keys: tuple[Key, ...]) -> Replay:
    """What a repeat of this delivery is answered: the same alerts, all duplicates."""
    incidents = [
        i.model_copy(update={"started": False, "signalled": 0, "ignored": 0, "duplicates": n})
        for i in result.incidents
        for n in [len({k for k in keys if k[0] == i.workflow_id})]
    ]
    outcome = "duplicate" if incidents else result.outcome
    answer = result.model_copy(update={"outcome": outcome, "incidents": incidents})
    return Replay(
        keys=keys,
        answer=answer.model_dump_json().encode(),
        duplicates=sum(i.duplicates for i in incidents),
        unrouted=len(result.unrouted),
        truncated=result.truncated_alerts,
    )


def _outcome(incidents: list[IncidentOutcome], unrouted: list[UnroutedAlert]) -> Outcome:
    if not incidents:
        return "unrouted"
    if any(i.signalled for i in incidents):
        return "recorded"
    if all(i.ignored == len(i.alerts) for i in incidents if i.alerts) and not any(
        i.duplicates for i in incidents
    ):
        return "ignored"
    return "duplicate"
