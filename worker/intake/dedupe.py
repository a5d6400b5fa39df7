"""Recognise repeated deliveries cheaply, without ever answering 200 for an unrecorded alert.

Alertmanager re-sends the whole group on every change and every repeat_interval, and an HA pair
sends each notification twice. Each (workflow id, fingerprint, status) that Temporal has
accepted is remembered for a short window; a delivery made only of remembered keys is answered
without a Temporal call. A key being recorded right now by another request is awaited rather
than sent again, and if that send fails the waiter fails too (503, the source retries).

One instance per app (owned by it, never a module global), bounded in size (least recently
recorded keys go first), used from one event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Key = tuple[str, str, str]  # workflow id, fingerprint, status


@dataclass
class Claim:
    """What a delivery must do for its keys: send `new`, await `pending`, skip `recent`."""

    new: list[Key] = field(default_factory=list)
    pending: list[asyncio.Future[bool]] = field(default_factory=list)
    recent: list[Key] = field(default_factory=list)


class RecentAlerts:
    def __init__(
        self,
        window_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._max = max_entries
        self._clock = clock
        self._recorded: OrderedDict[Key, float] = OrderedDict()
        self._in_flight: dict[Key, asyncio.Future[bool]] = {}

    def __len__(self) -> int:
        return len(self._recorded)

    def claim(self, keys: Iterable[Key]) -> Claim:
        """Sort keys; every key returned in `new` must later be passed to `settle`."""
        now = self._clock()
        claim = Claim()
        for key in dict.fromkeys(keys):
            recorded = self._recorded.get(key)
            if recorded is not None and now - recorded < self._window:
                claim.recent.append(key)
            elif key in self._in_flight:
                claim.pending.append(self._in_flight[key])
            else:
                self._in_flight[key] = asyncio.get_running_loop().create_future()
                claim.new.append(key)
        return claim

    def settle(self, keys: Iterable[Key], recorded: bool) -> None:
        """Release claimed keys; remember them only when Temporal accepted them."""
        now = self._clock()
        for key in keys:
            future = self._in_flight.pop(key, None)
            if recorded:
                self._recorded[key] = now
                self._recorded.move_to_end(key)
            if future is not None and not future.done():
                future.set_result(recorded)
        while len(self._recorded) > self._max:
            self._recorded.popitem(last=False)

    def all_recent(self, keys: Iterable[Key]) -> bool:
        now = self._clock()
        return all(now - self._recorded.get(key, float("-inf")) < self._window for key in keys)


@dataclass(frozen=True)
class Replay:
    """The answer to a byte-identical repeat of a delivery whose alerts are all still recent:
    no parsing, no routing, no Temporal call; the counts keep the metrics honest."""

    keys: tuple[Key, ...]
    answer: bytes
    duplicates: int
    unrouted: int
    truncated: int


class RecentDeliveries:
    """Byte-identical repeats (an HA pair's twin, a repeat_interval resend) recognised by a
    digest of the authenticated body. Valid only while every alert key of the delivery is
    still recent in RecentAlerts, so it never stretches the dedupe window."""

    def __init__(self, recent: RecentAlerts, max_entries: int) -> None:
        self._recent = recent
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, bytes], Replay] = OrderedDict()

    @staticmethod
    def digest(source: str, body: bytes) -> tuple[str, bytes]:
        return source, hashlib.blake2b(body, digest_size=16).digest()

    def get(self, digest: tuple[str, bytes]) -> Replay | None:
        replay = self._entries.get(digest)
        if replay is None or not self._recent.all_recent(replay.keys):
            return None
        self._entries.move_to_end(digest)
        return replay

    def put(self, digest: tuple[str, bytes], replay: Replay) -> None:
        self._entries[digest] = replay
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
