"""The warm step: every warmer of the target, critical keys first, then the rest."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.redis.access import open_sync_client
from activities.targets import TargetBook
from activities.warming.http import warm_over_http
from activities.warming.job import JobWarmer, step_key
from activities.warming.models import ArmedWarmer
from contracts.steps import StepResult
from contracts.target import RedisTarget

WARM_FAILED = "WarmFailed"
Outcome = str | int


def load_callable(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise TypeError(f"{path} is not callable")
    return function  # type: ignore[no-any-return]


def failed(outcome: object) -> bool:
    return isinstance(outcome, str) and outcome.startswith("failed")


class WarmingActivities:
    """`warmers`: each configured target's (by name), secrets read."""

    def __init__(
        self,
        targets: TargetBook,
        warmers: Mapping[str, Sequence[ArmedWarmer]],
        jobs: JobWarmer | None = None,
    ) -> None:
        self._targets = targets
        self._warmers = warmers
        self._jobs = jobs or JobWarmer(None, (3.0, 5.0))

    @activity.defn(name="warm")
    async def warm(self, target: RedisTarget) -> StepResult:
        """Fails (not retried: each warmer had its go) only when every warmer failed; a cold
        cache still works, it is only slower, so one warmer that worked is a warmed cache."""
        name = self._targets.find(target).name
        warmers = self._warmers.get(name) or []
        if not warmers:
            why = "no warmers configured for this target: the cache fills on use"
            return StepResult(changed=False, summary=why)
        outcomes: dict[str, str | int | float | None] = {}
        for critical_only in (True, False):
            phase = "critical" if critical_only else "all"
            for armed in warmers:
                if armed.warmer.kind == "job" and not critical_only:
                    continue  # a Job runs once; its command says what it warms
                async with heartbeating(f"{armed.warmer.name}: {phase}"):
                    outcome = await self._run(armed, name, target, critical_only)
                outcomes[f"{armed.warmer.name}/{phase}"] = outcome
        bad = [k for k, v in outcomes.items() if failed(v)]
        keys = await asyncio.to_thread(self._dbsize, target)
        summary = f"warmed: {len(outcomes) - len(bad)} of {len(outcomes)} passes ok, {keys} keys"
        jobs = [str(v) for v in outcomes.values() if str(v).startswith("job ")]
        if jobs:  # which Job to `kubectl logs`
            summary += f" ({'; '.join(jobs)})"
        if bad:
            summary += f"; failed: {', '.join(bad)}"
        if len(bad) == len(outcomes):
            reasons = "; ".join(f"{k}: {outcomes[k]}" for k in bad)
            raise ApplicationError(
                f"every warmer failed ({keys} keys in Redis): {reasons}"[:900],
                type=WARM_FAILED,
                non_retryable=True,
            )
        return StepResult(changed=True, summary=summary, after={"keys": keys, **outcomes})

    async def _run(
        self, armed: ArmedWarmer, name: str, target: RedisTarget, critical_only: bool
    ) -> Outcome:
        warmer = armed.warmer
        try:
            if warmer.kind == "http":
                return await warm_over_http(armed, name, target, critical_only)
            if warmer.kind == "job":
                info = activity.info()
                key = step_key(info.workflow_id or "", info.workflow_run_id or "", info.activity_id)
                return await asyncio.to_thread(self._jobs.run, warmer, target, name, key)
            return await asyncio.wait_for(
                asyncio.to_thread(self._call, warmer.target or "", target, critical_only),
                warmer.timeout_s,
            )
        except Exception as err:  # a broken warmer is reported, never fatal on its own
            return f"failed: {type(err).__name__}: {err}"[:300]

    def _call(self, path: str, target: RedisTarget, critical_only: bool) -> int:
        function = load_callable(path)
        with self._client(target) as client:
            written = function(client, critical_only)
        return int(written or 0)

    def _dbsize(self, target: RedisTarget) -> int | str:
        try:
            with self._client(target) as client:
                return int(client.dbsize())
        except (redis.RedisError, OSError) as err:
            return f"unknown ({type(err).__name__})"

    def _client(self, target: RedisTarget) -> redis.Redis:
        return open_sync_client(target, self._targets.access(target))
