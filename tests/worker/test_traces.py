"""One incident, one trace: a real `runbook webhook` and `runbook worker`, each exporting over
OTLP to a receiver on loopback (the collector's gRPC TraceService), and an Alertmanager
delivery that opens an incident. The delivery's request span, the Temporal client's
signal-with-start, the workflow and every activity the history records share one trace id."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from contracts.incident import IncidentReport
from sandbox.processes import Daemon, free_port, wait_for_port
from tests.conftest import RedisFactory
from tests.intake.test_webhook_helpers import TOKEN, address, alertmanager_payload, am_alert, bearer

RUNBOOK = str(Path(sys.executable).parent / "runbook")
NS = "traced"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """What an OpenTelemetry collector's OTLP/gRPC trace endpoint receives."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes
                            if a.key == "service.name"), "")  # fmt: skip
            for scope in resource.scope_spans:
                self.spans += [{"name": s.name, "trace": s.trace_id.hex(), "service": service,
                                "parent": s.parent_span_id.hex(), "id": s.span_id.hex(),
                                "attributes": {a.key: str(a.value) for a in s.attributes}}
                               for s in scope.spans]  # fmt: skip
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def otlp_receiver() -> Iterator[tuple[Receiver, int]]:
    receiver = Receiver()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, port
    finally:
        server.stop(grace=None)


def config_file(tmp_path: Path, redis_url: str, temporal: str) -> Path:
    config = {
        "temporal": {"address": temporal, "task_queue": f"traced-{os.getpid()}"},
        "kubernetes": {"enabled": False},
        "webhook": {"mode": "auto"},
        "targets": [{"name": "traced", "match": {"namespace": NS}, "redis_url": redis_url,
                     "namespace": NS, "statefulset": "redis"}],
    }  # fmt: skip
    path = tmp_path / "runbook.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def activities_in(handle: Any) -> set[str]:
    """Every activity the history records: scheduled ones and local activities' markers."""
    names = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names.add(event.activity_task_scheduled_event_attributes.activity_type.name)
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == "core_local_activity":
                data = json.loads(attrs.details["data"].payloads[0].data)
                names.add(data["activity_type"])
    return names


async def test_a_delivery_the_workflow_and_every_activity_are_one_trace(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory, tmp_path: Path
) -> None:
    redis = redis_server()
    config = config_file(tmp_path, redis.url, address(temporal_env))
    with otlp_receiver() as (receiver, port):
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
               "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_BSP_SCHEDULE_DELAY": "100",
               "RUNBOOK_WEBHOOK_TOKEN": TOKEN}  # fmt: skip
        hook_port = free_port()
        worker = Daemon("worker", [RUNBOOK, "--config", str(config), "worker"],
                        tmp_path / "worker.log", env)  # fmt: skip
        webhook = Daemon("webhook", [RUNBOOK, "--config", str(config), "webhook", "--port",
                         str(hook_port)], tmp_path / "webhook.log", env)  # fmt: skip
        try:
            wait_for_port(hook_port, timeout=30, proc=webhook.proc)
            alert = am_alert("RedisDown", "f-traced", namespace=NS)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook_port}") as http:
                payload = alertmanager_payload([alert])
                answer = await http.post("/alerts/alertmanager", headers=bearer(), json=payload)
            assert answer.status_code == 200, answer.text
            handle = temporal_env.client.get_workflow_handle(
                f"redis-cache-failure/{NS}/redis", result_type=IncidentReport
            )
            report = await asyncio.wait_for(handle.result(), 60)
            activities = await activities_in(handle)
        finally:
            worker.stop()
            webhook.stop()
        deadline = time.monotonic() + 10
        while not {"RunWorkflow:RedisCacheFailure"} <= {s["name"] for s in receiver.spans}:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            await asyncio.sleep(0.2)

    assert report.outcome in ("resolved", "mitigated"), report.escalations
    (request,) = [s for s in receiver.spans if s["parent"] == ""
                  and "/alerts/alertmanager" in s["attributes"].get("url.path", "")]  # fmt: skip
    assert request["service"] == "redis-runbook-webhook"
    trace = [s for s in receiver.spans if s["trace"] == request["trace"]]
    names = {s["name"] for s in trace}
    assert "SignalWithStartWorkflow:RedisCacheFailure" in names, names
    assert "RunWorkflow:RedisCacheFailure" in names, names
    assert activities and {f"RunActivity:{a}" for a in activities} <= names, (activities, names)
    assert {s["service"] for s in trace} == {"redis-runbook-webhook", "redis-runbook-worker"}
