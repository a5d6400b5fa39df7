"""Following a StatefulSet's rollout with watches, as `kubectl rollout status` and `kubectl
wait --for=condition=ready` do, so wait_ready sees the last change within milliseconds
instead of at its next poll.

A look reads the StatefulSet and its pods (done already: no watch), then watches both: the
StatefulSet by name (field selector metadata.name), the pods by the StatefulSet's label
selector. Every event carries the whole object, so the state is the last object seen. The
rollout is done when the StatefulSet's status says so and the pods agree, because the status
is written a moment after the pods change (and a force-deleted pod leaves it saying "ready").

The watches ask for no resourceVersion: the server sends the objects as they are when the
watch starts (ADDED), then every change, so nothing between the read and the watch can be
missed, and no "too old resource version" can end a look early on a server with a short
watch cache.

Each watch is bounded by `timeoutSeconds`, so the caller heartbeats and checks its deadline
between looks. The next look starts from a fresh read rather than resuming the watch: a
change lost by a proxy costs at most one look, and a watch that expired (410 Gone) needs
nothing more.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch

from activities.kubernetes.client import JSONDict, read_json
from activities.kubernetes.inspect import label_selector, pod_facts, statefulset_facts

# Per watch call: with the read timeout's margin on top it stays well under wait_ready's
# 10 s heartbeat timeout. Near the deadline a watch gets the seconds left, rounded up
# (timeoutSeconds is whole seconds), so a look ends less than a second past the deadline.
WATCH_SECONDS = 3
BEAT_SECONDS = 2.0  # heartbeat this often while no event arrives
STOP_POLL_SECONDS = 0.02

Beat = Callable[[str], None]
Item = JSONDict | BaseException | None  # an event, the error that ended a watch, or its end


class RawWatch(watch.Watch):
    """The official client's watch, handing each event's object over as the JSON the server
    sent (as read_json does): no model round trip, unknown fields kept, and its ERROR events
    (410 Gone among them) still raised as ApiException. Typed where this module calls it."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def get_return_type(self, func: Any) -> None:
        return None

    def events(
        self, call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Iterator[JSONDict | None]:
        """The stream of events (a generator: the request goes out on the first next())."""
        stream: Iterator[JSONDict | None] = self.stream(call, *args, **kwargs)  # type: ignore[no-untyped-call]
        return stream

    def stop(self) -> None:
        super().stop()  # type: ignore[no-untyped-call]


def rollout_reason(sts: JSONDict) -> str | None:
    """What the StatefulSet's status still waits for (kubectl rollout status's test)."""
    facts = statefulset_facts(sts)
    if facts.rollout_complete:
        return None
    return (
        f"rollout: {facts.ready_replicas}/{facts.replicas} ready, "
        f"{facts.updated_replicas} updated, observed generation "
        f"{facts.observed_generation}/{facts.generation}"
    )


def pods_reason(sts: JSONDict, pods: Iterable[JSONDict], container: str) -> str | None:
    """What keeps the pods from being done, even when the StatefulSet's status (which the
    controller updates a moment later) already says so: a pod missing, terminating, not
    ready, or of an older revision."""
    facts = [pod_facts(p, container) for p in pods]
    revision = (sts.get("status") or {}).get("updateRevision")
    wanted = int((sts.get("spec") or {}).get("replicas", 1))
    if len(facts) != wanted:
        return f"{len(facts)}/{wanted} pods exist"
    for pod in sorted(facts, key=lambda p: p.name):
        if pod.terminating or not pod.ready or (revision and pod.revision != revision):
            return f"pod {pod.name} is not ready yet"
    return None


@dataclass
class Rollout:
    """The StatefulSet and its pods as last seen."""

    sts: JSONDict
    pods: dict[str, JSONDict]
    container: str
    gone: bool = False

    @property
    def selector(self) -> str:
        return label_selector((self.sts.get("spec") or {}).get("selector") or {})

    def reason(self) -> str | None:
        """None when the rollout is complete and every pod agrees; else what is missing."""
        if self.gone:
            return "the StatefulSet was deleted"
        return rollout_reason(self.sts) or pods_reason(self.sts, self.pods.values(), self.container)

    def apply(self, kind: str, event: JSONDict) -> None:
        obj, change = event.get("object") or {}, event.get("type")
        if change not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK: nothing changed
        if kind == "statefulset":
            if change == "DELETED":
                self.gone = True
            else:
                self.sts = obj
        elif change == "DELETED":
            self.pods.pop(obj["metadata"]["name"], None)
        else:
            self.pods[obj["metadata"]["name"]] = obj


class RolloutWatcher:
    """Reads and watches one StatefulSet and its pods with the worker's ApiClient."""

    def __init__(self, api: client.ApiClient, timeouts: tuple[float, float]) -> None:
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.timeouts = timeouts

    def read(self, namespace: str, name: str, container: str) -> Rollout:
        """The StatefulSet, then its pods (by its own selector)."""
        sts = read_json(
            self.apps.read_namespaced_stateful_set, name, namespace, timeout=self.timeouts
        )
        rollout = Rollout(sts=sts, pods={}, container=container)
        found = read_json(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=rollout.selector,
            timeout=self.timeouts,
        )
        rollout.pods = {p["metadata"]["name"]: p for p in found.get("items") or []}
        return rollout

    def follow(self, rollout: Rollout, seconds: int, beat: Beat) -> str | None:
        """Watch both for up to `seconds`, updating `rollout`: None as soon as it is done,
        else why not when a watch ends. An ApiException or transport error of either watch
        is raised here."""
        namespace = rollout.sts["metadata"]["namespace"]
        events: queue.Queue[tuple[str, Item]] = queue.Queue()
        watches: list[RawWatch] = []
        with ThreadPoolExecutor(2, thread_name_prefix="wait-ready-watch") as pool:
            pumps = []
            for kind, call, kwargs in self._watches(rollout, seconds):
                watches.append(stream := RawWatch())
                events_of = stream.events(call, namespace, **kwargs)
                pumps.append(pool.submit(_pump, kind, events_of, events))
            try:
                return _until_done(rollout, events, beat)
            finally:
                _stop(watches, pumps)

    def _watches(
        self, rollout: Rollout, seconds: int
    ) -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
        """The StatefulSet by name and its pods by its selector, each from the server's current
        state; the client waits a read timeout longer than the server's end."""
        bounds = {
            "timeout_seconds": seconds,
            "_request_timeout": (self.timeouts[0], seconds + self.timeouts[1]),
        }
        sts = {"field_selector": f"metadata.name={rollout.sts['metadata']['name']}", **bounds}
        pods = {"label_selector": rollout.selector, **bounds}
        return [
            ("statefulset", self.apps.list_namespaced_stateful_set, sts),
            ("pods", self.core.list_namespaced_pod, pods),
        ]


def _pump(
    kind: str, stream: Iterator[JSONDict | None], events: queue.Queue[tuple[str, Item]]
) -> None:
    """Move one watch's events to the shared queue; then its end, or the error that ended it.
    The client yields None for a blank or unreadable line: nothing happened, it is skipped."""
    try:
        for event in stream:
            if event is not None:
                events.put((kind, event))
    except Exception as err:  # handed to the waiting thread, which sorts it
        events.put((kind, err))
    else:
        events.put((kind, None))


def _until_done(rollout: Rollout, events: queue.Queue[tuple[str, Item]], beat: Beat) -> str | None:
    """Apply events until the rollout is done (None) or a watch ends (the last reason)."""
    reason = rollout.reason()
    while reason is not None:
        try:
            kind, item = events.get(timeout=BEAT_SECONDS)
        except queue.Empty:
            beat(reason)
            continue
        if isinstance(item, BaseException):
            raise item
        if item is None:
            return reason  # timeoutSeconds: this look is over, the next reads afresh
        rollout.apply(kind, item)
        reason = rollout.reason()
        if rollout.gone:
            return reason
    return None


def _stop(watches: list[RawWatch], pumps: list[Future[None]]) -> None:
    """Stop every watch and wait for its thread. A stop that comes before the watch's request
    went out is lost (stream() clears it), so it is repeated until the thread is done."""
    for stream, pump in zip(watches, pumps, strict=True):
        while True:
            stream.stop()
            try:
                pump.result(timeout=STOP_POLL_SECONDS)
                break
            except FutureTimeout:
                continue
