"""Restarting one member of a Sentinel-managed group as a replica: the old master after a
failover, or a replica that fell behind. DESTRUCTIVE for that pod only, and never for the
master: the Sentinels are asked where the master is at the moment of the delete.

Exactly once: a pod created after the step was first scheduled is the restart's own, so a
retried attempt waits for it instead of deleting it again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import redis
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from redis.backoff import NoBackoff
from redis.retry import Retry
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kubernetes.client import (
    K8S_BAD_REQUEST,
    RETRYABLE_TRANSPORT,
    JSONDict,
    as_application_error,
    kube_errors,
    read_json,
)
from activities.kubernetes.inspect import endpoint_pods
from activities.redis.errors import REFUSED_BY_POLICY
from activities.redis.options import client_options, member_access, url_at
from activities.redis.sentinel import (
    MasterUnavailable,
    address,
    master_address_sync,
    replica_lags,
    sentinels_see_up_sync,
    split,
)
from activities.targets import RedisAccess, TargetBook
from contracts.steps import StepResult
from contracts.target import RedisTarget

POLL_SECONDS = 0.25


def _replication(target: RedisTarget, member: str, access: RedisAccess) -> dict[str, Any]:
    """The member's INFO replication (over TLS for a rediss:// target); {} when it does not
    answer."""
    try:
        with redis.Redis.from_url(
            url_at(target, split(member)),
            **client_options(target, member_access(access)),
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        ) as conn:
            return dict(conn.info("replication"))
    except (redis.RedisError, OSError):
        return {}


def replica_of(target: RedisTarget, member: str, master: str, access: RedisAccess) -> bool:
    """The member answers, replicates from `master` with its link up, and the master has
    heard from it within the target's lag threshold."""
    info = _replication(target, member, access)
    at = address(info.get("master_host", ""), info.get("master_port", ""))
    if info.get("role") != "slave" or at != master or info.get("master_link_status") != "up":
        return False
    lag = replica_lags(_replication(target, master, access)).get(member)
    threshold = access.sentinel.lag_threshold_s if access.sentinel else 1.0
    return lag is not None and lag <= threshold


def says_master(target: RedisTarget, member: str, access: RedisAccess) -> bool:
    """The member itself answers that it is a master (a dead one does not)."""
    return _replication(target, member, access).get("role") == "master"


def _beat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


def _first_scheduled() -> datetime:
    return activity.info().scheduled_time if activity.in_activity() else datetime.now(UTC)


class ReplicaRestart:
    """Bound to the Kubernetes client and the worker's targets (which hold the Sentinels)."""

    def __init__(
        self, api: client.ApiClient, targets: TargetBook, timeouts: tuple[float, float]
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._targets = targets
        self._timeouts = timeouts

    def run(self, target: RedisTarget, member: str, deadline: datetime) -> StepResult:
        access = self._targets.access(target)
        if access.sentinel is None:
            raise ApplicationError(
                "restart_replica is for a Sentinel-managed target (`sentinel:` in its config)",
                type=REFUSED_BY_POLICY,
                non_retryable=True,
            )
        pod = self._pod_behind(target, member)
        master = address(*master_address_sync(access.sentinel, access))  # none yet: retried
        if master == member:
            if says_master(target, member, access):
                return StepResult(
                    changed=False,
                    summary=f"{pod} ({member}) is the master now: not restarted (this step "
                    "never restarts the master)",
                    after={"pod": pod, "master": master},
                )
            raise MasterUnavailable(  # a Sentinel's view the failover has not reached yet
                f"the Sentinels still name {pod} ({member}) the master, and it does not say "
                "so itself: waiting for them"
            )
        if replica_of(target, member, master, access):
            return StepResult(
                changed=False,
                summary=f"{pod} ({member}) already replicates from {master} with its link up",
                after={"pod": pod, "master": master},
            )
        deleted = self._delete_unless_ours(target, pod)
        waited = self._wait_replica(target, pod, member, master, access, deadline)
        return StepResult(
            changed=deleted,
            summary=f"{'restarted' if deleted else 'waited for'} {pod} ({member}): a replica of "
            f"{master} again, link up, after {waited:.1f} s",
            after={"pod": pod, "master": master, "waited_seconds": waited},
        )

    def clients_follow(self, target: RedisTarget, deadline: datetime) -> StepResult:
        """The master Service's ready endpoints are the master's pod alone."""
        access = self._targets.access(target)
        group = access.sentinel
        if group is None or group.master_service is None:
            raise ApplicationError(
                "verify_clients needs the target's sentinel.master_service",
                type=REFUSED_BY_POLICY,
                non_retryable=True,
            )
        began = time.monotonic()
        while True:
            master = address(*master_address_sync(group, access))
            pod = self._pod_behind(target, master)
            ready = self._ready_pods(target, group.master_service)
            if ready == [pod]:
                waited = round(time.monotonic() - began, 1)
                return StepResult(
                    changed=False,
                    summary=f"service {group.master_service} points at {pod} ({master}), the "
                    f"master, only (after {waited:.1f} s)",
                    after={"service": group.master_service, "pod": pod, "master": master},
                )
            if datetime.now(UTC) >= deadline:
                raise ApplicationError(
                    f"service {group.master_service} points at {', '.join(ready) or 'nothing'}"
                    f", not the master {pod} ({master}): clients do not follow the failover",
                    type="ClientsNotFollowing",
                    non_retryable=True,
                )
            _beat(f"service {group.master_service}: {ready}, waiting for {pod}")
            time.sleep(POLL_SECONDS)

    def _ready_pods(self, target: RedisTarget, service: str) -> list[str]:
        with kube_errors(f"verify_clients: endpoints {service}"):
            found = read_json(
                self._core.read_namespaced_endpoints,
                service,
                target.namespace,
                timeout=self._timeouts,
            )
        return sorted(
            str((a.get("targetRef") or {}).get("name"))
            for subset in found.get("subsets") or []
            for a in subset.get("addresses") or []
        )

    def _pod_behind(self, target: RedisTarget, member: str) -> str:
        """The StatefulSet pod the endpoints say serves `member`; only that set's pods."""
        with kube_errors("restart_replica (read)"):
            sts = read_json(
                self._apps.read_namespaced_stateful_set,
                target.statefulset,
                target.namespace,
                timeout=self._timeouts,
            )
            service = (sts.get("spec") or {}).get("serviceName") or target.statefulset
            found = read_json(
                self._core.read_namespaced_endpoints,
                service,
                target.namespace,
                timeout=self._timeouts,
            )
        pod = endpoint_pods(found.get("subsets") or []).get(member)
        replicas = int((sts.get("spec") or {}).get("replicas", 1))
        if pod is None or pod not in {f"{target.statefulset}-{i}" for i in range(replicas)}:
            raise ApplicationError(
                f"no pod of statefulset {target.statefulset} is behind {member} in service "
                f"{service}'s endpoints: nothing restarted",
                type=K8S_BAD_REQUEST,
                non_retryable=True,
            )
        return pod

    def _delete_unless_ours(self, target: RedisTarget, pod: str) -> bool:
        """Delete the pod gracefully, unless it was created after this step began (a retry
        finding the restart's own pod) or it is gone already."""
        what = f"restart_replica: delete pod {target.namespace}/{pod}"
        try:
            with kube_errors(f"{what} (read)"):
                current: JSONDict = read_json(
                    self._core.read_namespaced_pod, pod, target.namespace, timeout=self._timeouts
                )
        except ApplicationError:
            return False  # gone: the StatefulSet makes it anew
        meta = current["metadata"]
        created = datetime.fromisoformat(str(meta["creationTimestamp"]).replace("Z", "+00:00"))
        if created > _first_scheduled() or meta.get("deletionTimestamp"):
            return False
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=meta["uid"]))
        try:
            self._core.delete_namespaced_pod(
                pod, target.namespace, body=options, _request_timeout=self._timeouts
            )
        except ApiException as err:
            if err.status in (404, 409):
                return False
            raise as_application_error(err, what) from err
        except RETRYABLE_TRANSPORT as err:
            raise as_application_error(err, what) from err
        return True

    def _wait_replica(
        self,
        target: RedisTarget,
        pod: str,
        member: str,
        master: str,
        access: RedisAccess,
        deadline: datetime,
    ) -> float:
        began = time.monotonic()
        group = access.sentinel
        assert group is not None
        while not (
            replica_of(target, member, master, access)
            and sentinels_see_up_sync(group, access, member)
        ):
            if datetime.now(UTC) >= deadline:
                raise ApplicationError(
                    f"{pod} ({member}) is not replicating from {master}, as the Sentinels see "
                    "it, by the deadline",
                    type="ReplicaNotBack",
                    non_retryable=True,
                )
            _beat(f"waiting for {pod} to replicate from {master}")
            time.sleep(POLL_SECONDS)
        return round(time.monotonic() - began, 1)
