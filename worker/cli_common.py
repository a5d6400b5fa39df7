"""What every `runbook` subcommand shares: the usage error and the Temporal connection."""

from __future__ import annotations

from temporalio.client import Client

from worker.client import connect
from worker.settings import Settings


class UsageError(Exception):
    """Bad input from the person at the terminal: exit 2, nothing started or changed."""


async def connect_or_explain(settings: Settings) -> Client:
    try:
        return await connect(settings.temporal)
    except RuntimeError as err:
        raise UsageError(
            f"cannot reach Temporal at {settings.temporal.address}: {err}. Fix: start it "
            "(temporal server start-dev) or set TEMPORAL_ADDRESS"
        ) from None
