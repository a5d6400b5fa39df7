"""Keep an activity's heartbeat going while it waits on something slow (a warmer's HTTP call,
a long sampling interval), so a live attempt is never taken for a dead worker's, and a dead
worker's attempt is given up within the short heartbeat timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

EVERY_S = 3.0


@contextlib.asynccontextmanager
async def heartbeating(detail: str, every_s: float = EVERY_S) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat(detail)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
