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
from typing import NoReturn

from temporalio.service import RPCError

from worker.cli import codec as codec_cli
from worker.cli import incidents as cli_incidents
from worker.cli import start as cli_start
from worker.cli import webhook as webhook_cli
from worker.cli.common import CommandFailed, UsageError, connect_or_explain, report_error
from worker.client import TemporalSettingsError
from worker.payloads.codec import CodecError
from worker.settings.loader import load_settings
from worker.settings.runbook import ConfigError, Settings


class _Parser(argparse.ArgumentParser):
    """Raises instead of printing and exiting, so that a mistyped command with --json gets
    its error as JSON too. Subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}. Fix: see `{self.prog} --help`")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="runbook", description=__doc__)
    parser.add_argument("--config", type=Path, help="runbook.yaml (default: $RUNBOOK_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser(
        "worker", help="run the Temporal worker (TEMPORAL_ADDRESS, RUNBOOK_CONFIG)"
    )
    worker.set_defaults(handler=_worker)
    cli_start.add_parser(sub)
    cli_incidents.add_parsers(sub)
    rbac = sub.add_parser(
        "rbac", help="print the worker's Kubernetes Role for the targets in runbook.yaml"
    )
    rbac.set_defaults(handler=_rbac)
    webhook_cli.add_parser(sub)
    codec_cli.add_parser(sub)
    return parser


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the activities and their client libraries are the worker's alone, and
    # `runbook approve` at 3 a.m. should not wait for them.
    from worker.client import worker_metrics
    from worker.runner import run_worker
    from worker.telemetry import configure_tracing

    tracing = configure_tracing("redis-runbook-worker")
    metrics = worker_metrics(settings.metrics)
    client = await connect_or_explain(settings, metrics.runtime if metrics else None)
    if settings.metrics.address:
        logging.getLogger("runbook.worker").info(
            "metrics on http://%s/metrics", settings.metrics.address
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(client, settings, stop)
    if tracing is not None:
        tracing.shutdown()
    if metrics is not None:
        metrics.close()
    return 0


async def _rbac(args: argparse.Namespace, settings: Settings) -> int:
    import yaml

    from worker.rbac import roles_for

    if not settings.targets:
        raise UsageError("no targets in the config: the Role names the targets' objects")
    print(yaml.safe_dump_all(roles_for(settings), sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit 0 done, 1 the answer is no (refused, failed), 2 bad input or setup. With --json
    every outcome, errors included, is one JSON object on stdout."""
    argv = sys.argv[1:] if argv is None else argv
    as_json = "--json" in argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        args = _parser().parse_args(argv)
        settings = load_settings(args.config)
        return int(asyncio.run(args.handler(args, settings)))
    except (ConfigError, UsageError, CodecError, TemporalSettingsError) as err:
        return report_error(as_json, str(err), 2, {}, prefix="error: ")
    except CommandFailed as err:
        return report_error(as_json, str(err), err.code, err.details)
    except RPCError as err:
        message = f"Temporal answered {err.status.name}: {err.message}"
        return report_error(as_json, message, 1, {}, prefix="error: ")


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
