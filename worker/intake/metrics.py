"""Prometheus metrics of the alert intake, in a registry the app owns (no process globals, so
two apps in one process, as in the tests, count separately)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "runbook_webhook_deliveries",
            "Deliveries received, by source and outcome (recorded, duplicate, unrouted, "
            "ignored, unauthorized, bad_request, too_large, unsupported_media_type, "
            "unavailable)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "runbook_webhook_alerts",
            "Alerts by what became of them: started (opened an incident), signalled (into a "
            "running one), duplicate (recently recorded), unrouted, ignored",
            ["source", "action"],
            registry=self.registry,
        )
        self.truncated = Counter(
            "runbook_webhook_truncated_alerts",
            "Alerts the sender left out of its deliveries (Alertmanager truncatedAlerts)",
            ["source"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "runbook_webhook_request_duration_seconds",
            "Time to answer an alert delivery, by source",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.temporal_latency = Histogram(
            "runbook_webhook_temporal_call_duration_seconds",
            "Time of one signal-with-start or signal call to Temporal",
            ["call"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.slack_actions = Counter(
            "runbook_webhook_slack_actions",
            "Slack button clicks (POST /slack/actions) by outcome: approved, rejected, "
            "refused_by_workflow (the policy said no), forged, stale, unmapped, malformed, "
            "not_configured, too_large, ignored, unavailable (the decision did not reach the "
            "incident)",
            ["outcome"],
            registry=self.registry,
        )
        self.dedupe_entries = Gauge(
            "runbook_webhook_dedupe_entries",
            "Recorded (alert, status) keys remembered for deduplication",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
