"""The dedupe cache: repeats within the window are skipped, concurrent ones wait for the first,
failures are never remembered, and the size stays bounded."""

from __future__ import annotations

from worker.intake.dedupe import RecentAlerts, RecentDeliveries, Replay


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_repeat_within_window_is_recent_then_sent_again() -> None:
    clock = Clock()
    recent = RecentAlerts(window_seconds=60, max_entries=10, clock=clock)
    key = ("wf", "fp", "firing")
    claim = recent.claim([key, key])
    assert claim.new == [key]
    recent.settle(claim.new, recorded=True)
    assert recent.claim([key]).recent == [key]
    clock.now = 61
    again = recent.claim([key])
    assert again.new == [key]
    recent.settle(again.new, recorded=True)


async def test_concurrent_claim_waits_and_learns_the_outcome() -> None:
    recent = RecentAlerts(window_seconds=60, max_entries=10)
    key = ("wf", "fp", "firing")
    first = recent.claim([key])
    second = recent.claim([key])
    assert second.new == [] and len(second.pending) == 1
    recent.settle(first.new, recorded=False)
    assert await second.pending[0] is False
    assert recent.claim([key]).new == [key], "a failed send is never remembered"


async def test_size_is_bounded() -> None:
    recent = RecentAlerts(window_seconds=60, max_entries=3)
    for i in range(10):
        claim = recent.claim([("wf", str(i), "firing")])
        recent.settle(claim.new, recorded=True)
    assert len(recent) == 3
    assert recent.claim([("wf", "0", "firing")]).new, "the oldest were evicted"


async def test_byte_identical_repeat_is_replayed_only_while_its_alerts_are_recent() -> None:
    clock = Clock()
    recent = RecentAlerts(window_seconds=60, max_entries=10, clock=clock)
    deliveries = RecentDeliveries(recent, max_entries=2)
    key = ("wf", "fp", "firing")
    recent.settle(recent.claim([key]).new, recorded=True)
    digest = RecentDeliveries.digest("alertmanager", b'{"alerts": []}')
    replay = Replay(keys=(key,), answer=b"{}", duplicates=1, unrouted=0, truncated=0)
    deliveries.put(digest, replay)
    assert deliveries.get(digest) is replay
    assert deliveries.get(RecentDeliveries.digest("grafana", b'{"alerts": []}')) is None
    clock.now = 61
    assert deliveries.get(digest) is None, "never stretches the alert window"
