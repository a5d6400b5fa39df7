"""Record a refused Slack action in the incident it names, with the `refused` signal.

A plain signal, never signal-with-start: a refused request must not open an incident, and one
that names an incident that does not exist records nothing. Anyone who can reach the endpoint
can send a forged request naming a real incident, so recordings are rate-limited per incident:
the first few of a burst land in its timeline (enough to see the attack), the rest are only
logged and counted, so a flood cannot grow the incident's history without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from temporalio.service import RPCError, RPCStatusCode

from contracts.decisions import Refusal
from worker.intake.incidents import TemporalGateway, TemporalUnavailable

log = logging.getLogger("runbook.webhook.slack")

REFUSED_SIGNAL = "refused"
SOURCE = "slack"
BURST = 10  # refusals recorded per incident per WINDOW
WINDOW = 60.0  # seconds
TRACKED = 10_000  # incidents remembered by the limiter


class RefusalLimiter:
    """A fixed window per incident id, in a bounded LRU (oldest incidents forgotten first)."""

    def __init__(
        self,
        burst: int = BURST,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._window = window
        self._clock = clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, workflow_id: str) -> bool:
        now = self._clock()
        began, count = self._seen.pop(workflow_id, (now, 0))
        if now - began >= self._window:
            began, count = now, 0
        self._seen[workflow_id] = (began, count + 1)
        while len(self._seen) > TRACKED:
            self._seen.popitem(last=False)
        return count < self._burst


class RefusalRecorder:
    def __init__(self, gateway: TemporalGateway, limiter: RefusalLimiter | None = None) -> None:
        self._gateway = gateway
        self._limiter = limiter or RefusalLimiter()

    async def record(self, workflow_id: str, actor: str | None, reason: str) -> bool:
        """True when the incident got it. Failures are logged, never raised: the request is
        refused whether or not the refusal could be written down."""
        if not self._limiter.allow(workflow_id):
            log.warning("slack refusal for %s not recorded (rate limit): %s", workflow_id, reason)
            return False
        refusal = Refusal(source=SOURCE, actor=(actor or "unknown")[:200], reason=reason[:2000])
        timeout = self._gateway.timeout
        try:
            client = await self._gateway.client()
            handle = client.get_workflow_handle(workflow_id)
            await asyncio.wait_for(
                handle.signal(REFUSED_SIGNAL, refusal, rpc_timeout=timeout),
                timeout.total_seconds(),
            )
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                log.info("slack refusal names no open incident %s", workflow_id)
            else:
                log.warning("slack refusal for %s not recorded: %s", workflow_id, err.message)
            return False
        except (TemporalUnavailable, TimeoutError) as err:
            log.warning("slack refusal for %s not recorded: %s", workflow_id, err or "timeout")
            return False
        return True
