"""The alert intake: an ASGI app that turns Alertmanager, Grafana, PagerDuty and generic
deliveries into RedisCacheFailure incidents.

Each delivery goes: size limit -> authentication -> content type -> parse -> route -> record.
The order matters: nothing unauthenticated is parsed, and nothing is answered 200 unless
Temporal took every routed alert (a 4xx makes Alertmanager drop a delivery, a 5xx makes it
retry, so 503 is the answer whenever Temporal did not record it).

`create_app` builds everything the app owns (Temporal gateway, dedupe cache, metrics registry);
there are no module globals and nothing happens at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from worker.approvals.endpoint import APPROVALS_PATH, ApprovalRequest, ApprovalsEndpoint
from worker.client import connect
from worker.intake.auth import Authenticator, AuthError, Credentials
from worker.intake.dedupe import RecentAlerts
from worker.intake.incidents import (
    Connector,
    DeliveryResult,
    ErrorBody,
    Intake,
    TemporalGateway,
    TemporalUnavailable,
)
from worker.intake.metrics import WebhookMetrics
from worker.intake.sources import PARSERS, REQUEST_MODELS, Delivery
from worker.settings.runbook import ConfigError, Settings
from worker.settings.webhook import AlertSource
from worker.slack.actions import OPENAPI as SLACK_OPENAPI
from worker.slack.actions import PATH as SLACK_PATH
from worker.slack.actions import SECURITY_SCHEME as SLACK_SECURITY_SCHEME
from worker.slack.actions import SlackActions

log = logging.getLogger("runbook.webhook")

JSON_TYPES = ("application/json",)
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "basic": {"type": "http", "scheme": "basic"},
    "grafanaSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Grafana-Alerting-Signature",
        "description": "hex HMAC-SHA256 of the body (or of '<timestamp>:' + body)",
    },
    "pagerdutySignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-PagerDuty-Signature",
        "description": "v1=<hex HMAC-SHA256 of the body>, comma-separated during rotation",
    },
    "slackSignature": SLACK_SECURITY_SCHEME,
}
SOURCE_SECURITY: dict[AlertSource, list[dict[str, list[str]]]] = {
    AlertSource.ALERTMANAGER: [{"bearer": []}, {"basic": []}],
    AlertSource.GRAFANA: [{"grafanaSignature": []}, {"bearer": []}, {"basic": []}],
    AlertSource.PAGERDUTY: [{"pagerdutySignature": []}, {"bearer": []}, {"basic": []}],
    AlertSource.GENERIC: [{"bearer": []}, {"basic": []}],
}
SOURCE_SUMMARY = {
    AlertSource.ALERTMANAGER: "Alertmanager webhook_configs payload (version 4)",
    AlertSource.GRAFANA: "Grafana webhook contact point payload",
    AlertSource.PAGERDUTY: "PagerDuty V3 webhook (incident.triggered / incident.resolved)",
    AlertSource.GENERIC: "A list of the project's normalised Alert objects",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed JSON"},
    401: {"model": ErrorBody, "description": "missing, wrong or stale credentials"},
    413: {"model": ErrorBody, "description": "body over webhook.max_body_bytes"},
    415: {"model": ErrorBody, "description": "content type is not application/json"},
    422: {"model": ErrorBody, "description": "JSON that is not this source's payload"},
    503: {"model": ErrorBody, "description": "Temporal did not record it: retry"},
}
SLACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "taken: the outcome is posted to the interaction's response_url"},
    400: {"model": ErrorBody, "description": "malformed: not a Slack approve/reject action"},
    401: {"model": ErrorBody, "description": "forged signature or stale timestamp"},
    403: {"model": ErrorBody, "description": "the Slack user is not mapped to an approver"},
    404: {"model": ErrorBody, "description": "no Slack signing secret configured"},
    413: {"model": ErrorBody, "description": "body over webhook.max_body_bytes"},
    415: {"model": ErrorBody, "description": "not application/x-www-form-urlencoded"},
}


class Refused(Exception):
    """A delivery answered with a 4xx/5xx: status, metric outcome, reason."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason


@dataclass
class WebhookState:
    """Everything one app instance owns."""

    settings: Settings
    auth: Authenticator
    gateway: TemporalGateway
    recent: RecentAlerts
    metrics: WebhookMetrics
    intake: Intake
    slack: SlackActions
    approvals: ApprovalsEndpoint


def build_state(
    settings: Settings, *, insecure_no_auth: bool = False, connector: Connector = connect
) -> WebhookState:
    """Refuse to build an app that would take alerts from anyone by accident."""
    credentials = Credentials.from_settings(settings)
    if not credentials.any and not insecure_no_auth:
        raise ConfigError(
            "the webhook has no credentials: set RUNBOOK_WEBHOOK_TOKEN (or "
            "RUNBOOK_WEBHOOK_TOKEN_FILE), RUNBOOK_WEBHOOK_BASIC_PASSWORD, RUNBOOK_GRAFANA_SECRET "
            "or RUNBOOK_PAGERDUTY_SECRETS, or pass --insecure-no-auth to accept anyone"
        )
    config = settings.webhook
    metrics = WebhookMetrics()
    gateway = TemporalGateway(settings.temporal, config.temporal_timeout, connector)
    recent = RecentAlerts(config.dedupe_window.total_seconds(), config.dedupe_max_entries)
    return WebhookState(
        settings=settings,
        auth=Authenticator(credentials, config, insecure_no_auth=insecure_no_auth),
        gateway=gateway,
        recent=recent,
        metrics=metrics,
        intake=Intake(settings, gateway, recent, metrics),
        slack=SlackActions(settings, gateway, metrics),
        approvals=ApprovalsEndpoint(settings, gateway),
    )


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=body.model_dump_json(), status_code=status, media_type="application/json",
        headers=headers,
    )  # fmt: skip


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"body of {declared} bytes is over {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", f"body is over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Refused(400, "bad_request", "the client went away mid-body") from None
    return b"".join(chunks)


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise Refused(
            415, "unsupported_media_type",
            f"content type must be application/json, got {media_type or 'none'!r}",
        )  # fmt: skip


def _problems(errors: list[Any], most: int = 5) -> str:
    """A body's validation errors as a reason: where, and what is wrong."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in errors[:most]
    )


def _parse(source: AlertSource, body: bytes) -> Delivery:
    try:
        return PARSERS[source](body)
    except ValidationError as err:
        errors = err.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise Refused(400, "bad_request", f"malformed JSON: {errors[0]['msg']}") from None
        problems = _problems(errors)
        raise Refused(422, "bad_request", f"not a {source.value} payload: {problems}") from None
    except ValueError as err:
        raise Refused(422, "bad_request", f"not a {source.value} payload: {err}") from None


def _delivery_handler(state: WebhookState, source: AlertSource) -> Callable[..., Any]:
    limit = state.settings.webhook.max_body_bytes
    latency = state.metrics.latency.labels(source.value)

    async def receive(request: Request) -> Response:
        began = time.perf_counter()
        try:
            body = await _read_body(request, limit)
            try:
                state.auth.check(source, request.headers, body)
            except AuthError as err:
                raise Refused(401, "unauthorized", str(err)) from None
            _check_content_type(request)
            replayed = state.intake.replay(source.value, body)
            if replayed is not None:
                state.metrics.deliveries.labels(source.value, "duplicate").inc()
                return Response(replayed, media_type="application/json")
            delivery = _parse(source, body)
            try:
                result = await state.intake.record(delivery, body)
            except TemporalUnavailable as err:
                log.warning("%s delivery not recorded: %s", source.value, err)
                raise Refused(503, "unavailable", str(err)) from None
            state.metrics.deliveries.labels(source.value, result.outcome).inc()
            return _json(200, result)
        except Refused as refused:
            state.metrics.deliveries.labels(source.value, refused.outcome).inc()
            headers = {"Retry-After": "5"} if refused.status == 503 else None
            if refused.status == 401:
                headers = {"WWW-Authenticate": 'Bearer realm="runbook"'}
            return _json(
                refused.status, ErrorBody(error=refused.outcome, reason=refused.reason), headers
            )
        finally:
            latency.observe(time.perf_counter() - began)

    receive.__name__ = f"receive_{source.value}"
    return receive


def _slack_handler(state: WebhookState) -> Callable[..., Any]:
    """Slack's button clicks (worker/slack/actions.py); the same body limit as alerts."""
    limit = state.settings.webhook.max_body_bytes

    async def slack_actions(request: Request) -> Response:
        try:
            body = await _read_body(request, limit)
        except Refused as refused:
            state.slack.count(refused.outcome)
            return _json(refused.status, ErrorBody(error=refused.outcome, reason=refused.reason))
        answer = await state.slack.handle(request.headers, body)
        task = BackgroundTask(answer.after) if answer.after else None
        if answer.status == 200:
            return Response(status_code=200, background=task)
        error = ErrorBody(error=answer.outcome, reason=answer.reason)
        return Response(
            content=error.model_dump_json(), status_code=answer.status,
            media_type="application/json", background=task,
        )  # fmt: skip

    return slack_actions


def _approvals_handler(state: WebhookState) -> Callable[..., Any]:
    """Decisions proven by an ID token (worker/approvals/endpoint.py)."""
    limit = state.settings.webhook.max_body_bytes

    async def approvals(request: Request) -> Response:
        try:
            body = await _read_body(request, limit)
            parsed = ApprovalRequest.model_validate_json(body)
        except Refused as refused:
            return _json(refused.status, ErrorBody(error=refused.outcome, reason=refused.reason))
        except ValidationError as err:
            reason = _problems(err.errors(include_url=False, include_input=False))
            return _json(400, ErrorBody(error="malformed", reason=reason))
        answer = await state.approvals.handle(request.headers.get("authorization"), parsed)
        return JSONResponse(answer.body, status_code=answer.status)

    return approvals


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI cannot see the bodies (handlers read raw bytes, to check signatures before
    parsing), so the schema of each source's payload is added here."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        components["securitySchemes"] = SECURITY_SCHEMES
        for source, model in REQUEST_MODELS.items():
            body = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            operation = schema["paths"][f"/alerts/{source.value}"]["post"]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
            operation["security"] = SOURCE_SECURITY[source]
        schema["paths"][SLACK_PATH]["post"].update(SLACK_OPENAPI)
        if APPROVALS_PATH in schema["paths"]:
            body = ApprovalRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schema["paths"][APPROVALS_PATH]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        app.openapi_schema = schema
        return schema

    return build


def create_app(
    settings: Settings, *, insecure_no_auth: bool = False, connector: Connector = connect
) -> FastAPI:
    state = build_state(settings, insecure_no_auth=insecure_no_auth, connector=connector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.auth.open:
            log.warning("--insecure-no-auth: accepting alerts from anyone")
        for source in AlertSource:
            if not state.auth.usable(source) and not state.auth.open:
                log.warning("no credentials for %s: its deliveries are refused", source.value)
        for slack_problem in state.slack.problems() + state.approvals.problems():
            log.warning("%s", slack_problem)
        problem = await state.gateway.ready()
        if problem:
            log.warning("%s (deliveries get 503 until it answers)", problem)
        yield

    app = FastAPI(
        title="redis-runbook alert intake",
        version="1",
        description="Alert deliveries in, one RedisCacheFailure incident per Redis target out.",
        lifespan=lifespan,
    )
    app.state.webhook = state

    for source in AlertSource:
        app.add_api_route(
            f"/alerts/{source.value}",
            _delivery_handler(state, source),
            methods=["POST"],
            summary=SOURCE_SUMMARY[source],
            response_model=DeliveryResult,
            responses=ERROR_RESPONSES,
            tags=["alerts"],
        )

    app.add_api_route(
        SLACK_PATH,
        _slack_handler(state),
        methods=["POST"],
        summary="Slack Approve / Reject buttons (Interactivity Request URL)",
        responses=SLACK_RESPONSES,
        tags=["slack"],
    )

    if settings.webhook.oidc is not None:
        app.add_api_route(
            APPROVALS_PATH,
            _approvals_handler(state),
            methods=["POST"],
            summary="Approve or reject a step, proven by an ID token (Authorization: Bearer)",
            tags=["approvals"],
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process answers; says nothing about Temporal (that is /readyz)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"model": ErrorBody, "description": "Temporal not reachable"}},
    )
    async def readyz() -> Response:
        """Ready when Temporal answers: a load balancer then stops sending to a webhook that
        could only answer 503."""
        problem = await state.gateway.ready()
        if problem:
            return JSONResponse({"error": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready", "temporal": state.settings.temporal.address})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        state.metrics.dedupe_entries.set(len(state.recent))
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
