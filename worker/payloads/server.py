"""Temporal's codec-server protocol, so the Web UI (and `temporal` with --codec-endpoint) can
show decoded payloads to the people allowed to see them: those holding the codec server's
bearer token. POST /decode and /encode take and give {"payloads": [{"metadata": {name:
base64}, "data": base64}]}. The UI calls it from the browser, so it answers CORS for the
UI's origin only."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from temporalio.api.common.v1 import Payload

from worker.payloads.codec import CodecError, EncryptionCodec

LIMIT = 4 * 1024 * 1024  # bytes of JSON a request may carry


def _payloads(body: Any) -> list[Payload]:
    if not isinstance(body, dict) or not isinstance(body.get("payloads"), list):
        raise ValueError('the body must be {"payloads": [...]}')
    out = []
    for item in body["payloads"]:
        metadata = {k: base64.b64decode(v) for k, v in (item.get("metadata") or {}).items()}
        out.append(Payload(metadata=metadata, data=base64.b64decode(item.get("data") or "")))
    return out


def _json(payloads: list[Payload]) -> dict[str, Any]:
    return {"payloads": [
        {"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
         "data": base64.b64encode(p.data).decode()}
        for p in payloads
    ]}  # fmt: skip


def create_codec_app(codec: EncryptionCodec, token: str | None, ui_origin: str | None) -> FastAPI:
    """`token` None: anyone who reaches it (only with --insecure-no-auth)."""
    app = FastAPI(title="redis-runbook codec server", version="1")
    cors = {
        "Access-Control-Allow-Origin": ui_origin or "",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Namespace",
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    } if ui_origin else {}  # fmt: skip

    def refused(request: Request) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        return JSONResponse({"detail": "a bearer token is required"}, 401, headers=cors)

    async def run(request: Request, decode: bool) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        raw = await request.body()
        if len(raw) > LIMIT:
            return JSONResponse({"detail": f"over {LIMIT} bytes"}, 413, headers=cors)
        try:
            payloads = _payloads(await request.json())
            done = await (codec.decode(payloads) if decode else codec.encode(payloads))
        except (ValueError, CodecError) as err:
            return JSONResponse({"detail": str(err)}, 400, headers=cors)
        return JSONResponse(_json(done), headers=cors)

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await run(request, decode=True)

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await run(request, decode=False)

    @app.options("/{path:path}")
    async def preflight(path: str) -> Response:
        return Response(status_code=204, headers=cors)

    return app
