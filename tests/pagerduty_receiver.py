"""A local stand-in for PagerDuty's Events API v2 (POST /v2/enqueue) that checks each event
the way PagerDuty documents it and answers as PagerDuty does: 202 with the dedup_key, or 400
"invalid event" with the errors. Every event is kept, valid or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.http_receiver import loopback_server

TOP_LEVEL = {"routing_key", "event_action", "dedup_key", "payload", "images", "links",
             "client", "client_url"}  # fmt: skip
PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class",
           "custom_details"}  # fmt: skip


def problems(event: dict[str, Any]) -> list[str]:
    """What PagerDuty would refuse in this event (Events API v2)."""
    found = [f"unknown field {k}" for k in set(event) - TOP_LEVEL]
    key, action = event.get("routing_key"), event.get("event_action")
    if not isinstance(key, str) or len(key) != 32:
        found.append("routing_key must be a 32-character integration key")
    if action not in ("trigger", "acknowledge", "resolve"):
        found.append("event_action must be trigger, acknowledge or resolve")
    dedup = event.get("dedup_key")
    if action != "trigger" and not dedup:
        found.append("dedup_key is required to acknowledge or resolve")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        found.append("dedup_key must be a string of at most 255 characters")
    if action == "trigger":
        found += payload_problems(event.get("payload"))
    for link in event.get("links") or []:
        if not isinstance(link, dict) or not str(link.get("href", "")).startswith("http"):
            found.append("links need an href")
    return found


def payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload is required to trigger"]
    found = [f"unknown payload field {k}" for k in set(payload) - PAYLOAD]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
        found.append("payload.summary is required, at most 1024 characters")
    if not payload.get("source"):
        found.append("payload.source is required")
    if payload.get("severity") not in ("critical", "error", "warning", "info"):
        found.append("payload.severity must be critical, error, warning or info")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]))
        except ValueError:
            found.append("payload.timestamp must be ISO 8601")
    if not isinstance(payload.get("custom_details", {}), dict):
        found.append("payload.custom_details must be an object")
    return found


class EventsApi:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.events: list[dict[str, Any]] = []
        self.refused: list[list[str]] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v2/enqueue"


@contextmanager
def pagerduty_events_api() -> Iterator[EventsApi]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            event = json.loads(self.rfile.read(length))
            api.events.append(event)
            errors = problems(event) if self.path == "/v2/enqueue" else ["unknown path"]
            if errors:
                api.refused.append(errors)
                answer = {"status": "invalid event", "message": "Event object is invalid",
                          "errors": errors}  # fmt: skip
            else:
                answer = {"status": "success", "message": "Event processed",
                          "dedup_key": event.get("dedup_key")}  # fmt: skip
            body = json.dumps(answer).encode()
            self.send_response(400 if errors else 202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    with loopback_server(Handler) as server:
        api = EventsApi(server)
        yield api
