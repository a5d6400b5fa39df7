"""`runbook`: run the worker, start an incident, follow it, approve its steps.

Every input is validated here, before anything reaches Temporal: a workflow started with bad
input is an incident that cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from worker import cli_incidents, cli_start, webhook_cli
from worker.cli_common import UsageError, connect_or_explain
from worker.config_loader import load_settings
from worker.runner import run_worker
from worker.settings import ConfigError, Settings
from worker.telemetry import configure_tracing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runbook", description=__doc__)
    parser.add_argument("--config", type=Path, help="runbook.yaml (default: $RUNBOOK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser(
        "worker", help="run the Temporal worker (TEMPORAL_ADDRESS, RUNBOOK_CONFIG)"
    )
    worker.set_defaults(handler=_worker)
    cli_start.add_parser(sub)
    cli_incidents.add_parsers(sub)
    webhook_cli.add_parser(sub)
    return parser


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    tracing = configure_tracing("redis-runbook-worker")
    client = await connect_or_explain(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(client, settings, stop)
    if tracing is not None:
        tracing.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(args.config)
        return int(asyncio.run(args.handler(args, settings)))
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run() -> None:
    """Console entry point. Exits with os._exit once output is flushed: the Temporal core's
    native threads can abort a normal interpreter shutdown (SIGABRT in PyGILState_Release),
    which would turn a finished command into a crash."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
