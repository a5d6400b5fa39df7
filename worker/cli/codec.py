"""`runbook codec-server`: the Web UI's decoder for encrypted payloads (temporal.codec)."""

from __future__ import annotations

import argparse
from typing import Any

from worker.cli.common import UsageError
from worker.settings.runbook import Settings


def add_parser(sub: Any) -> None:
    codec = sub.add_parser(
        "codec-server",
        help="decode encrypted payloads for the Temporal Web UI (needs temporal.codec)",
    )
    codec.add_argument("--host", default="127.0.0.1")
    codec.add_argument("--port", type=int, default=8888)
    codec.add_argument(
        "--ui-origin",
        help="the Web UI's origin, allowed to call it from the browser (e.g. http://localhost:8233)",
    )
    codec.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without RUNBOOK_CODEC_SERVER_TOKEN: anyone who reaches it reads payloads",
    )
    codec.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from worker.client import data_converter
    from worker.payloads.codec import EncryptionCodec
    from worker.payloads.server import create_codec_app

    codec = data_converter(settings.temporal).payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise UsageError("temporal.codec names no keys: there is nothing to decode")
    token = settings.codec_server_token
    if token is None and not args.insecure_no_auth:
        raise UsageError(
            "no RUNBOOK_CODEC_SERVER_TOKEN (or _FILE): anyone could read the payloads. Fix: "
            "set one, and give it to the Web UI's codec endpoint as its access token"
        )
    app = create_codec_app(codec, token.get_secret_value() if token else None, args.ui_origin)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None))
    await server.serve()
    return 0
