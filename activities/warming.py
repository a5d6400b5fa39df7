"""Warm a cold cache after a flush or an outage, the way the runbook's warm script does:
critical keys first, then the rest. Warmers are pluggable: an HTTP endpoint of the
application, or a Python callable by import path. A warmer that fails is reported, never
fatal: a cold cache still works, it is only slower."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any, Literal

import httpx
import redis
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.redis.access import open_sync_client
from activities.targets import TargetBook
from contracts.steps import StepResult
from contracts.target import RedisTarget


class Warmer(BaseModel):
    """`http`: POST url?critical_only=true|false, 2xx means done. `callable`:
    "package.module:function", called as function(client: redis.Redis, critical_only: bool)
    and returning how many keys it wrote (or None)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Literal["http", "callable"]
    url: str | None = None
    target: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    timeout_s: float = Field(default=120.0, gt=0)


def load_callable(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise TypeError(f"{path} is not callable")
    return function  # type: ignore[no-any-return]


class WarmingActivities:
    def __init__(self, targets: TargetBook, warmers: list[Warmer]) -> None:
        self._targets = targets
        self._warmers = warmers

    @activity.defn(name="warm")
    async def warm(self, target: RedisTarget) -> StepResult:
        if not self._warmers:
            return StepResult(
                changed=False, summary="no warmers configured: the cache fills on use"
            )
        outcomes: dict[str, str | int | float | None] = {}
        for critical_only in (True, False):
            for warmer in self._warmers:
                phase = "critical" if critical_only else "all"
                async with heartbeating(f"{warmer.name}: {phase}"):
                    outcome = await self._run(warmer, target, critical_only)
                outcomes[f"{warmer.name}/{phase}"] = outcome
        failed = [k for k, v in outcomes.items() if isinstance(v, str) and v.startswith("failed")]
        keys = await asyncio.to_thread(self._dbsize, target)
        summary = f"warmed: {len(outcomes) - len(failed)} of {len(outcomes)} passes ok, {keys} keys"
        if failed:
            summary += f"; failed: {', '.join(failed)}"
        return StepResult(changed=True, summary=summary, after={"keys": keys, **outcomes})

    async def _run(self, warmer: Warmer, target: RedisTarget, critical_only: bool) -> str | int:
        try:
            if warmer.kind == "http":
                return await self._http(warmer, critical_only)
            return await asyncio.wait_for(
                asyncio.to_thread(self._call, warmer, target, critical_only), warmer.timeout_s
            )
        except Exception as err:  # a broken warmer is reported, never fatal
            return f"failed: {type(err).__name__}: {err}"[:300]

    async def _http(self, warmer: Warmer, critical_only: bool) -> str:
        async with httpx.AsyncClient(timeout=warmer.timeout_s) as client:
            response = await client.post(
                warmer.url or "", params={"critical_only": str(critical_only).lower()}
            )
        if response.status_code >= 300:
            return f"failed: HTTP {response.status_code}"
        return f"HTTP {response.status_code}"

    def _call(self, warmer: Warmer, target: RedisTarget, critical_only: bool) -> int:
        function = load_callable(warmer.target or "")
        with self._client(target) as client:
            written = function(client, critical_only)
        return int(written or 0)

    def _dbsize(self, target: RedisTarget) -> int:
        with self._client(target) as client:
            return int(client.dbsize())

    def _client(self, target: RedisTarget) -> redis.Redis:
        return open_sync_client(target, self._targets.access(target))
