"""`runbook webhook`: serve the alert intake with uvicorn.

Wired into worker/cli/app.py with `webhook_cli.add_parser(sub)` (it sets `handler=run`, like the
other subcommands); `python -m worker.cli.webhook webhook ...` runs the same thing on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.settings.loader import load_settings
from worker.settings.runbook import ConfigError, Settings

if TYPE_CHECKING:
    import uvicorn


def add_parser(subparsers: Any) -> None:
    webhook = subparsers.add_parser(
        "webhook", help="serve the alert webhook (Alertmanager, Grafana, PagerDuty, generic)"
    )
    webhook.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    webhook.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    webhook.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="start even though no webhook credential is configured, accepting anyone",
    )
    webhook.add_argument("--access-log", action="store_true", help="log every request")
    webhook.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; raises ConfigError (exit 2) when there are no
    credentials and --insecure-no-auth was not given.

    The server gets its own event loop in a thread: uvloop when it is installed (about a third
    more deliveries per second than the default loop the CLI runs in). This loop only waits
    for it and turns SIGINT/SIGTERM into uvicorn's graceful shutdown."""
    import uvicorn  # the server's imports only when serving: other commands start faster

    from worker.client import connect_options, data_converter
    from worker.telemetry import configure_tracing
    from worker.webhook import create_app

    # With tracing on, FastAPI makes each request a server span (continuing a sender's
    # traceparent); the Temporal client's spans are its children, the workflow's theirs.
    connect_options(settings.temporal)  # a bad profile or TLS path stops it here,
    data_converter(settings.temporal)  # and so does a codec key that cannot be read
    tracing = configure_tracing("redis-runbook-webhook")
    app = create_app(settings, insecure_no_auth=args.insecure_no_auth)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # Everything imported and built so far lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stall every request for 40-60 ms in a storm.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    await asyncio.to_thread(_serve, server)
    if tracing is not None:
        tracing.shutdown()  # the last spans go out before the process ends
    return 0


def _serve(server: uvicorn.Server) -> None:
    try:
        import uvloop
    except ImportError:  # optional: the default loop works, only slower
        asyncio.run(server.serve())
        return
    uvloop.run(server.serve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runbook-webhook", description=__doc__)
    parser.add_argument("--config", type=Path, help="runbook.yaml (default: $RUNBOOK_CONFIG)")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return asyncio.run(run(args, load_settings(args.config)))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
