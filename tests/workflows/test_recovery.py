"""After a flush the cache is warmed (critical keys first) and the workflow watches the hit
rate climb under real cache-aside traffic, reporting the curve."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from contracts.steps import StepName
from sandbox.cache_traffic import CacheTraffic
from tests.conftest import RedisFactory
from tests.harness import auto, full_evicting_redis, running_worker, settings_for, start, until_step


async def test_flushed_cache_is_warmed_and_hit_rate_climbs(
    temporal_env: WorkflowEnvironment, redis_server: RedisFactory
) -> None:
    server = full_evicting_redis(redis_server)  # can evict nothing: the flush is needed
    settings = settings_for(
        server.url,
        approvals={"required_for": ["flush"]},
        warmers=[
            {"name": "catalog", "kind": "callable", "target": "sandbox.cache_traffic:warm_catalog"},
            {"name": "broken", "kind": "http", "url": "http://127.0.0.1:9/warm"},
        ],
        recovery={"watch_interval": "0.5s", "watch_deadline": "20s"},
    )
    incident = auto(server.url)
    async with running_worker(temporal_env.client, settings):
        handle = await start(
            temporal_env.client,
            settings,
            incident,
            "recovery",
            start_signal="approve",
            start_signal_args=[{"step": "flush", "approver": "bob"}],
        )
        await until_step(handle, StepName.FLUSH, "succeeded")
        with CacheTraffic(server.port) as traffic:  # the application, back on an empty cache
            report = await handle.result()

    steps = {s.name: s for s in report.steps}
    assert steps[StepName.FLUSH].status == "succeeded"
    warm = steps[StepName.WARM]
    assert warm.status == "succeeded"
    assert warm.detail is not None and "failed: broken/critical, broken/all" in warm.detail
    assert warm.result is not None and warm.result.after["catalog/critical"] == 50
    watch = steps[StepName.WATCH_HIT_RATE]
    assert watch.status == "succeeded"
    assert watch.detail is not None and "reached 60%" in watch.detail
    assert watch.result is not None and watch.result.after  # the curve
    assert report.outcome == "resolved", report.escalations
    assert traffic.requests > 50
