"""Every activity's target is checked against the worker's configuration before it runs.

The workflow asks the same question first (its `runbook_config` call), so this is the second
lock: whatever path a target takes into an activity, an unconfigured one reaches no Redis and
no Kubernetes API, and the attempt fails with a non-retryable UnknownTarget error.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.targets import TargetBook
from contracts.target import RedisTarget


class TargetGuard(Interceptor):
    def __init__(self, targets: TargetBook) -> None:
        self._targets = targets

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CheckedActivity(next, self._targets)


class _CheckedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, targets: TargetBook) -> None:
        super().__init__(next)
        self._targets = targets

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        for argument in input.args:
            if isinstance(argument, RedisTarget):
                self._targets.find(argument)
        return await self.next.execute_activity(input)
