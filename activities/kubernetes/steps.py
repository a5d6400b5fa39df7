"""The runbook's Kubernetes steps, as sync activities on the worker's thread pool.

Every mutation reads first and writes absolute values behind JSON-patch `test` guards
(kubernetes_plans), so a retried attempt finds its work done and changes nothing more:
restart carries the workflow's stamp, enable_fallback remembers the original replicas on the
Deployment, scale and raise_memory_limit set absolute values, force_delete_pod deletes only
the pod incarnation it read. The ApiClient is injected (no globals); when Kubernetes is not
configured, inspect_kubernetes says so in its facts and the steps fail non-retryably.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kubernetes.client import (
    K8S_BAD_REQUEST,
    K8S_NOT_CONFIGURED,
    K8S_NOT_FOUND,
    RETRYABLE_TRANSPORT,
    JSONDict,
    KubernetesAccess,
    KubernetesNotConfigured,
    as_application_error,
    guarded_patch,
    kube_errors,
    load_api_client,
    read_json,
)
from activities.kubernetes.inspect import (
    OOM_WINDOW,
    Inspector,
    quantity_bytes,
    statefulset_facts,
)
from activities.kubernetes.maintenance import (
    annotation,
    plan_end_env,
    plan_enter_env,
    plan_point,
    plan_point_back,
    plan_scale_back,
    plan_scale_up,
)
from activities.kubernetes.plans import (
    container_args,
    env_value,
    memory_limit_of,
    plan_args,
    plan_env_vars,
    plan_forget_replicas,
    plan_hpa_at_least,
    plan_hpa_restore,
    plan_memory_limit,
    plan_record_restart,
    plan_remember_replicas,
    plan_replicas,
    plan_restart,
    remembered_env,
    remembered_replicas,
    replicas_of,
    restart_stamp,
)
from activities.kubernetes.replica import ReplicaRestart
from activities.kubernetes.rollout import WATCH_SECONDS, Rollout, RolloutWatcher
from activities.redis.access import open_sync_client
from activities.targets import MaintenanceMode, RedisAccess, TargetBook
from contracts.finding import Finding
from contracts.kubernetes import (
    MAINTENANCE_ENV,
    MAINTENANCE_SELECTOR,
    FallbackResult,
    ForceDeleteResult,
    KubeProblem,
    KubernetesFacts,
    MemoryLimitResult,
    ReadinessResult,
    ReEnableResult,
    RestartResult,
    ScaleResult,
    StatefulSetFacts,
)
from contracts.steps import StepResult
from contracts.target import RedisTarget

QUANTITY = r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
# After the rollout is done: PING this often, for up to this long, before looking again.
PING_RETRY_SECONDS = 0.025
PING_WINDOW_SECONDS = 2.0
# A watch the server ends sooner than this is a server closing early, not an idle rollout:
# the next look waits as after an API error, so a misbehaving server is not read in a loop.
MIN_WATCH_SECONDS = 0.5
GONE_PAUSE_SECONDS = 0.05  # after 410 Gone: the fresh read is the remedy, not a wait


def _restart_and_record(sts: JSONDict, stamp: str) -> list[JSONDict]:
    """One patch: the restart and its entry in the restart budget, or nothing on a retry."""
    restart = plan_restart(sts, stamp)
    if not restart:
        return []
    return restart + plan_record_restart(sts, datetime.now(UTC).isoformat())


def _beat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


def _readiness(
    ready: bool, reason: str, waited: float, ping_ok: bool | None, facts: Any
) -> ReadinessResult:
    summary = f"ready after {waited}s" if ready else f"not ready after {waited}s: {reason}"
    return ReadinessResult(
        changed=False,
        summary=summary,
        after={"ready": int(ready), "waited_seconds": waited},
        ready=ready,
        reason=reason,
        waited_seconds=waited,
        ping_ok=ping_ok,
        statefulset=facts,
    )


DURABLE = ("maxmemory-policy", "maxclients")


def live_settings(target: RedisTarget, access: RedisAccess) -> dict[str, str]:
    """The running Redis' maxmemory and the settings a restart would lose; {} if it does
    not answer (a crash loop): then only what the args already hold is kept."""
    conn = open_sync_client(target, access)
    try:
        found: dict[str, str] = {}
        for key in ("maxmemory", *DURABLE):
            for name, value in dict(conn.config_get(key)).items():
                found[str(name)] = str(value)
        return found
    except (redis.RedisError, OSError):
        return {}
    finally:
        conn.close()


def durable_options(
    live: dict[str, str], args: list[str], previous: str | None, limit: str
) -> dict[str, str]:
    """maxmemory in proportion to the new limit, and the live settings, as redis-server args."""
    options = {k: live[k] for k in DURABLE if k in live}
    flags = dict(zip(args[::2], args[1::2], strict=False))
    current = live.get("maxmemory") or flags.get("--maxmemory")
    old, new = quantity_bytes(previous), quantity_bytes(limit)
    if current and current.isdigit() and int(current) > 0 and old and new:
        options["maxmemory"] = str(int(current) * new // old)
    return options


def ping_redis(target: RedisTarget, access: RedisAccess) -> bool:
    """One PING over a fresh connection with the target's credentials."""
    conn = open_sync_client(target, access)
    try:
        return bool(conn.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        conn.close()


def ping_until(target: RedisTarget, access: RedisAccess, seconds: float) -> bool:
    """PING every few tens of milliseconds for up to `seconds` (once at least): a pod marked
    ready and its endpoint answering can be a moment apart."""
    end = time.monotonic() + seconds
    while not ping_redis(target, access):
        if time.monotonic() >= end:
            return False
        time.sleep(PING_RETRY_SECONDS)
    return True


@dataclass(frozen=True)
class Look:
    """One look of wait_ready: why it is not ready (or "ready"), the StatefulSet as last
    seen, whether Redis answered PING (None: not tried) and how long to pause before the next
    look (after an API error; a look that watched has waited already)."""

    reason: str
    facts: StatefulSetFacts | None
    pause: float = 0.0
    ping_ok: bool | None = None


def _facts(rollout: Rollout | None) -> StatefulSetFacts | None:
    return statefulset_facts(rollout.sts) if rollout is not None else None


def _seconds_left(deadline: datetime) -> float:
    return (deadline - datetime.now(UTC)).total_seconds()


class KubernetesActivities:
    """Activities bound to one ApiClient and the worker's Redis credentials."""

    def __init__(
        self,
        api: client.ApiClient | None,
        *,
        access: KubernetesAccess | None = None,
        targets: TargetBook | None = None,
        unavailable: str | None = None,
        oom_window: timedelta = OOM_WINDOW,
    ) -> None:
        self._client = api
        self._access = access or KubernetesAccess()
        self._targets = targets or TargetBook([])
        self._unavailable = unavailable or "Kubernetes is not configured for this worker"
        self.oom_window = oom_window

    @classmethod
    def from_access(
        cls,
        access: KubernetesAccess,
        targets: TargetBook | None = None,
        oom_window: timedelta = OOM_WINDOW,
    ) -> KubernetesActivities:
        """Load the configuration now; a missing one is remembered, not raised, so the worker
        still starts and inspect_kubernetes reports it."""
        try:
            api: client.ApiClient | None = load_api_client(access)
            reason = None
        except KubernetesNotConfigured as err:
            api, reason = None, str(err)
        return cls(api, access=access, targets=targets, unavailable=reason, oom_window=oom_window)

    @property
    def api_client(self) -> client.ApiClient | None:
        """The client other activities share (the Job warmer), None when not configured."""
        return self._client

    @property
    def configured(self) -> bool:
        """Whether this worker can act on Kubernetes at all (its steps are then offered)."""
        return self._client is not None

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for Worker(activities=...)."""
        return [
            self.inspect_kubernetes,
            self.restart,
            self.wait_ready,
            self.force_delete_pod,
            self.raise_memory_limit,
            self.enable_fallback,
            self.re_enable,
            self.scale,
            self.enter_maintenance,
            self.end_maintenance,
            self.restart_replica,
            self.verify_clients,
        ]

    # ------------------------------------------------------------------ plumbing

    @property
    def _api(self) -> client.ApiClient:
        if self._client is None:
            raise ApplicationError(self._unavailable, type=K8S_NOT_CONFIGURED, non_retryable=True)
        return self._client

    @property
    def _apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self._api)

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._api)

    def _autoscaler(self, target: RedisTarget, plan: Callable[[JSONDict], Any]) -> str:
        """Patch the API's HorizontalPodAutoscaler, when the target names one; its summary."""
        name = self._targets.workload(target).api_hpa
        if name is None:
            return ""
        hpas = client.AutoscalingV2Api(self._api)
        before, changed = guarded_patch(
            f"autoscaler {target.namespace}/{name}",
            lambda: read_json(
                hpas.read_namespaced_horizontal_pod_autoscaler,
                name,
                target.namespace,
                timeout=self._access.timeouts,
            ),
            plan,
            lambda ops: hpas.patch_namespaced_horizontal_pod_autoscaler(
                name, target.namespace, ops, _request_timeout=self._access.timeouts
            ),
        )
        was = (before.get("spec") or {}).get("minReplicas")
        return f"; autoscaler {name} minReplicas {was}" + (" changed" if changed else " kept")

    def _read_sts(self, target: RedisTarget) -> JSONDict:
        return read_json(
            self._apps.read_namespaced_stateful_set,
            target.statefulset,
            target.namespace,
            timeout=self._access.timeouts,
        )

    def _patch_sts(self, target: RedisTarget) -> Callable[[list[JSONDict]], Any]:
        return lambda ops: self._apps.patch_namespaced_stateful_set(
            target.statefulset, target.namespace, ops, _request_timeout=self._access.timeouts
        )

    def _deployment(self, target: RedisTarget, deployment: str | None = None) -> str:
        name = deployment or target.api_deployment
        if not name:
            raise ApplicationError(
                "the target names no api_deployment", type=K8S_BAD_REQUEST, non_retryable=True
            )
        return name

    def _read_deploy(self, target: RedisTarget, name: str) -> JSONDict:
        return read_json(
            self._apps.read_namespaced_deployment,
            name,
            target.namespace,
            timeout=self._access.timeouts,
        )

    def _patch_deploy(self, target: RedisTarget, name: str) -> Callable[[list[JSONDict]], Any]:
        return lambda ops: self._apps.patch_namespaced_deployment(
            name, target.namespace, ops, _request_timeout=self._access.timeouts
        )

    # ------------------------------------------------------------------ triage

    @activity.defn(name="inspect_kubernetes")
    def inspect_kubernetes(self, target: RedisTarget) -> KubernetesFacts:
        """Read-only. Never raises for an unreachable, unconfigured or forbidden API."""
        if self._client is None:
            return KubernetesFacts(
                taken_at=datetime.now(UTC),
                reachable=False,
                problem=KubeProblem.UNAVAILABLE,
                findings=[Finding(code="kubernetes_not_configured", message=self._unavailable)],
            )
        inspector = Inspector(
            self._client, self._access.timeouts, self._targets.workload(target), self.oom_window
        )
        return inspector.inspect(target)

    # ------------------------------------------------------------------ StatefulSet steps

    @activity.defn(name="restart")
    def restart(self, target: RedisTarget, stamp: str) -> RestartResult:
        """Rollout restart with the workflow's stamp in kubectl.kubernetes.io/restartedAt:
        when the annotation already holds that stamp, nothing is written (a retry)."""
        if not stamp:
            raise ApplicationError(
                "restart needs a stamp", type=K8S_BAD_REQUEST, non_retryable=True
            )
        what = f"restart statefulset {target.namespace}/{target.statefulset}"
        before, changed = guarded_patch(
            what,
            lambda: self._read_sts(target),
            lambda sts: _restart_and_record(sts, stamp),
            self._patch_sts(target),
        )
        previous = restart_stamp(before)
        return RestartResult(
            changed=changed,
            # The stamp is this incident's own: finding it means an earlier attempt of this
            # step restarted (its reply may have been lost), not that someone else did.
            summary=f"rollout restart {stamp}"
            if changed
            else f"restarted by an earlier attempt of this step ({stamp})",
            before={"restartedAt": previous},
            after={"restartedAt": stamp},
            statefulset=target.statefulset,
            stamp=stamp,
            restarted=changed,
            previous_stamp=previous,
        )

    @activity.defn(name="wait_ready")
    def wait_ready(
        self, target: RedisTarget, deadline: datetime, poll_seconds: float = 1.0
    ) -> ReadinessResult:
        """Watch until the rollout is complete (observedGeneration, ready and updated replicas,
        currentRevision == updateRevision, the pods agreeing) and Redis answers PING,
        heartbeating throughout. `poll_seconds` is the pause after an API error. Past the
        deadline it returns ready=False: waiting longer is the workflow's call."""
        began = time.monotonic()
        pause = min(max(poll_seconds, 0.05), 30.0)
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        while True:
            look = self._look(target, deadline, pause)
            waited = round(time.monotonic() - began, 3)
            if look.ping_ok:
                return _readiness(True, look.reason, waited, look.ping_ok, look.facts)
            _beat(look.reason)
            remaining = _seconds_left(deadline)
            if remaining <= 0:
                return _readiness(False, look.reason, waited, look.ping_ok, look.facts)
            time.sleep(min(look.pause, remaining))

    def _look(self, target: RedisTarget, deadline: datetime, pause: float) -> Look:
        """One read of the StatefulSet and its pods, watched until done or for one watch's
        timeout (none once the deadline is gone), then PING if done. 400, 401, 403 and 404
        fail non-retryably; other API errors and an unreachable API are "not ready yet", and
        the next look comes `pause` later, as it does after a watch the server ended early."""
        watcher = RolloutWatcher(self._api, self._access.timeouts)
        container = self._targets.workload(target).redis_container
        rollout: Rollout | None = None
        try:
            _beat("reading the StatefulSet")  # each call may take its full timeout
            rollout = watcher.read(target.namespace, target.statefulset, container)
            reason = rollout.reason()
            if reason is not None and (left := _seconds_left(deadline)) > 0:
                _beat(f"watching: {reason}")
                watched = time.monotonic()
                reason = watcher.follow(rollout, min(WATCH_SECONDS, math.ceil(left)), _beat)
                early = time.monotonic() - watched < MIN_WATCH_SECONDS
                if reason is not None:
                    return Look(reason, _facts(rollout), pause=pause if early else 0.0)
        except ApiException as err:
            if err.status in (400, 401, 403, 404):
                raise as_application_error(err, "wait_ready") from err
            # 410 Gone: the watch expired; the next look reads afresh, all but at once
            wait = GONE_PAUSE_SECONDS if err.status == 410 else pause
            return Look(f"Kubernetes API error {err.status}", _facts(rollout), pause=wait)
        except RETRYABLE_TRANSPORT as err:
            return Look(f"Kubernetes API unreachable: {err}", _facts(rollout), pause=pause)
        if reason is not None:  # the deadline is gone: no watch
            return Look(reason, _facts(rollout))
        _beat("rollout complete: PING")
        window = min(PING_WINDOW_SECONDS, _seconds_left(deadline))
        ok = ping_until(target, self._targets.access(target), window)
        reason = "ready" if ok else "rollout complete, Redis does not answer PING"
        return Look(reason, _facts(rollout), ping_ok=ok)

    @activity.defn(name="restart_replica")
    def restart_replica(self, target: RedisTarget, member: str, deadline: datetime) -> StepResult:
        """Restart the pod behind one member of a Sentinel-managed group, and wait until it
        replicates from the master again. DESTRUCTIVE for that pod; refused for the master."""
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        return ReplicaRestart(self._api, self._targets, self._access.timeouts).run(
            target, member, deadline
        )

    @activity.defn(name="verify_clients")
    def verify_clients(self, target: RedisTarget, deadline: datetime) -> StepResult:
        """After a failover: the Service clients reach the master through has the new master,
        and only it, among its ready endpoints (waits for the labels to follow, heartbeating)."""
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        return ReplicaRestart(self._api, self._targets, self._access.timeouts).clients_follow(
            target, deadline
        )

    @activity.defn(name="force_delete_pod")
    def force_delete_pod(
        self, target: RedisTarget, pod: str = "", uid: str = ""
    ) -> ForceDeleteResult:
        """Delete one of the StatefulSet's pods with grace 0. DESTRUCTIVE. Only the incarnation
        read (or `uid`, when given) is deleted: a retry finding it gone or replaced is a no-op."""
        name = pod or f"{target.statefulset}-0"
        what = f"force delete pod {target.namespace}/{name}"
        try:
            with kube_errors(f"{what} (read)"):
                current = read_json(
                    self._core.read_namespaced_pod,
                    name,
                    target.namespace,
                    timeout=self._access.timeouts,
                )
        except ApplicationError as err:
            if err.type != K8S_NOT_FOUND:
                raise
            return self._not_deleted(name, uid or None, "already gone")
        meta = current["metadata"]
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
        if not any(
            o.get("kind") == "StatefulSet" and o.get("name") == target.statefulset for o in owners
        ):
            raise ApplicationError(
                f"pod {name} is not owned by statefulset {target.statefulset}; not deleting it",
                type=K8S_BAD_REQUEST,
                non_retryable=True,
            )
        if uid and meta["uid"] != uid:
            return self._not_deleted(name, meta["uid"], f"already replaced (uid {meta['uid']})")
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
        )
        try:
            self._core.delete_namespaced_pod(
                name,
                target.namespace,
                body=options,
                grace_period_seconds=0,
                _request_timeout=self._access.timeouts,
            )
        except ApiException as err:
            if err.status in (404, 409):  # gone, or replaced since we read it
                return self._not_deleted(name, meta["uid"], "already gone or replaced")
            raise as_application_error(err, what) from err
        except RETRYABLE_TRANSPORT as err:
            raise as_application_error(err, what) from err
        return ForceDeleteResult(
            changed=True,
            summary=f"force-deleted {name} (uid {meta['uid']})",
            before={"uid": meta["uid"], "phase": (current.get("status") or {}).get("phase")},
            pod=name,
            deleted=True,
            uid=meta["uid"],
        )

    def _not_deleted(self, name: str, uid: str | None, why: str) -> ForceDeleteResult:
        return ForceDeleteResult(
            changed=False, summary=f"{name}: {why}", pod=name, deleted=False, uid=uid
        )

    @activity.defn(name="raise_memory_limit")
    def raise_memory_limit(
        self, target: RedisTarget, limit: str, container: str = ""
    ) -> MemoryLimitResult:
        """Set the Redis container's memory limit (found by name) to an absolute quantity;
        the change rolls the pod. Other containers, limits and requests are kept. In the same
        patch the container's args get maxmemory raised in proportion and the runtime settings
        earlier steps changed (maxmemory-policy, maxclients), so the restart this causes does
        not undo them."""
        if not re.fullmatch(QUANTITY, limit):
            raise ApplicationError(
                f"{limit!r} is not a memory quantity (e.g. 512Mi)",
                type=K8S_BAD_REQUEST,
                non_retryable=True,
            )
        name = container or self._targets.workload(target).redis_container
        what = f"raise memory limit of {target.namespace}/{target.statefulset}/{name}"
        live = live_settings(target, self._targets.access(target))

        def plan(sts: JSONDict) -> list[JSONDict]:
            limit_ops = plan_memory_limit(sts, name, limit)
            if not limit_ops:
                return []  # already raised (a retry): the args went in the same patch
            kept = durable_options(
                live, container_args(sts, name), memory_limit_of(sts, name), limit
            )
            return limit_ops + plan_args(sts, name, kept)

        before, changed = guarded_patch(
            what, lambda: self._read_sts(target), plan, self._patch_sts(target)
        )
        previous = memory_limit_of(before, name)
        kept = durable_options(live, container_args(before, name), previous, limit)
        carried = ", ".join(f"{k} {v}" for k, v in kept.items())
        return MemoryLimitResult(
            changed=changed,
            summary=(f"memory limit {previous} -> {limit}" if changed else f"already {limit}")
            + (f"; kept across the restart in the pod's args: {carried}" if kept else ""),
            before={"memory_limit": previous, **{k: live.get(k) for k in kept}},
            after={"memory_limit": limit, **kept},
            container=name,
            previous=previous,
            limit=limit,
        )

    # ------------------------------------------------------------------ API Deployment steps

    @activity.defn(name="enable_fallback")
    def enable_fallback(
        self, target: RedisTarget, fallback_replicas: int | None = None
    ) -> FallbackResult:
        """Serve from the database: CACHE_ENABLED=false on the API container, scaled to at least
        the fallback count (an API already running more keeps them: the database needs help
        then, not fewer replicas). The replicas before the first attempt are kept in an
        annotation, so a retry returns the ORIGINAL count, not the fallback one."""
        name = self._deployment(target)
        switch = self._targets.workload(target)
        replicas = fallback_replicas if fallback_replicas is not None else target.fallback_replicas
        if replicas is None or replicas < 0:
            raise ApplicationError(
                "enable_fallback needs fallback_replicas (argument or target)",
                type=K8S_BAD_REQUEST,
                non_retryable=True,
            )
        what = f"enable fallback on deployment {target.namespace}/{name}"

        def plan(deploy: JSONDict) -> list[JSONDict]:
            extra = {k: env_value(deploy, switch.api_container, k) for k in switch.fallback_env}
            ops = plan_remember_replicas(deploy, extra)
            wanted = {**switch.fallback_env, switch.cache_env: switch.cache_off}
            ops += plan_env_vars(deploy, switch.api_container, wanted)
            scale = plan_replicas(deploy, max(replicas_of(deploy), replicas))
            return ops + [op for op in scale if op not in ops]

        before, changed = guarded_patch(
            what, lambda: self._read_deploy(target, name), plan, self._patch_deploy(target, name)
        )
        original = remembered_replicas(before)
        if original is None:
            original = replicas_of(before)
        now = max(replicas_of(before), replicas)
        held = self._autoscaler(target, lambda hpa: plan_hpa_at_least(hpa, now))
        return FallbackResult(
            changed=changed,
            summary=f"{switch.cache_env}={switch.cache_off}, replicas {replicas_of(before)} -> "
            f"{now} (original {original}){held}",
            before={"replicas": replicas_of(before), "original_replicas": original},
            after={"replicas": now, switch.cache_env: switch.cache_off, **switch.fallback_env},
            deployment=name,
            original_replicas=original,
            replicas=now,
        )

    @activity.defn(name="re_enable")
    def re_enable(self, target: RedisTarget) -> ReEnableResult:
        """CACHE_ENABLED=true on the API container, and forget the remembered replicas (the
        fallback is over). Scaling back is the separate `scale` step."""
        name = self._deployment(target)
        switch = self._targets.workload(target)
        what = f"re-enable cache on deployment {target.namespace}/{name}"

        def plan(deploy: JSONDict) -> list[JSONDict]:
            # Only the vars this target's fallback sets: the annotation is the Deployment's, and
            # whoever may edit it must not steer re_enable to other env vars.
            before = remembered_env(deploy) or {}
            back = {k: v for k, v in before.items() if k in switch.fallback_env}
            wanted = {**back, switch.cache_env: switch.cache_on}
            return plan_env_vars(deploy, switch.api_container, wanted) + plan_forget_replicas(
                deploy
            )

        before, changed = guarded_patch(
            what, lambda: self._read_deploy(target, name), plan, self._patch_deploy(target, name)
        )
        original = remembered_replicas(before)
        summary = (f"{switch.cache_env}={switch.cache_on}" if changed
                   else f"{switch.cache_env} already {switch.cache_on}")  # fmt: skip
        if switch.fallback_env and remembered_env(before) is None:
            names = ", ".join(sorted(switch.fallback_env))
            summary += (f"; {names} left as the fallback set them: their values before it were "
                        "not recorded (set them by hand)")  # fmt: skip
        return ReEnableResult(
            changed=changed,
            summary=summary,
            before={"original_replicas": original},
            after={switch.cache_env: switch.cache_on},
            deployment=name,
            original_replicas=original,
        )

    @activity.defn(name="scale")
    def scale(
        self, target: RedisTarget, replicas: int | None = None, deployment: str = ""
    ) -> ScaleResult:
        """Scale the API Deployment to an absolute count (target.api_replicas by default)."""
        name = self._deployment(target, deployment or None)
        wanted = replicas if replicas is not None else target.api_replicas
        if wanted is None or wanted < 0:
            raise ApplicationError(
                "scale needs replicas (argument or target.api_replicas)",
                type=K8S_BAD_REQUEST,
                non_retryable=True,
            )
        what = f"scale deployment {target.namespace}/{name}"
        restored = self._autoscaler(target, plan_hpa_restore)  # first: it would scale up again
        before, changed = guarded_patch(
            what,
            lambda: self._read_deploy(target, name),
            lambda deploy: plan_replicas(deploy, wanted),
            self._patch_deploy(target, name),
        )
        previous = replicas_of(before)
        return ScaleResult(
            changed=changed,
            summary=(f"replicas {previous} -> {wanted}" if changed else f"already {wanted}")
            + restored,
            before={"replicas": previous},
            after={"replicas": wanted},
            deployment=name,
            previous=previous,
            replicas=wanted,
        )

    # ------------------------------------------------------------------ maintenance mode

    def _maintenance(self, target: RedisTarget) -> MaintenanceMode:
        mode = self._targets.workload(target).maintenance
        if mode is None:
            raise ApplicationError(
                "this target has no workload.maintenance: maintenance mode is not configured",
                type=K8S_BAD_REQUEST,
                non_retryable=True,
            )
        return mode

    def _read_service(self, target: RedisTarget, name: str) -> JSONDict:
        return read_json(self._core.read_namespaced_service, name, target.namespace,
                         timeout=self._access.timeouts)  # fmt: skip

    def _patch_service(self, target: RedisTarget, name: str) -> Callable[[list[JSONDict]], Any]:
        return lambda ops: self._core.patch_namespaced_service(
            name, target.namespace, ops, _request_timeout=self._access.timeouts
        )

    @activity.defn(name="enter_maintenance")
    def enter_maintenance(self, target: RedisTarget) -> StepResult:
        """The API's users see maintenance, not errors: the env var set on the API, or the
        maintenance pods scaled up first and then the Service pointed at them."""
        mode = self._maintenance(target)
        if mode.env:
            container = self._targets.workload(target).api_container
            before, changed = self._api_env(
                target, "maintenance mode", lambda d: plan_enter_env(d, container, mode.env)
            )
            was = annotation(before, MAINTENANCE_ENV) or {k: env_value(before, container, k)
                                                          for k in mode.env}  # fmt: skip
            return StepResult(changed=changed, summary=f"maintenance mode: {mode.describe()}",
                              before=was, after=dict(mode.env))  # fmt: skip
        assert mode.deployment is not None and mode.service is not None
        deployment, service = mode.deployment, mode.service
        _, scaled = guarded_patch(
            f"scale maintenance deployment {target.namespace}/{deployment}",
            lambda: self._read_deploy(target, deployment),
            lambda d: plan_scale_up(d, mode.replicas),
            self._patch_deploy(target, deployment),
        )
        before, pointed = guarded_patch(
            f"point service {target.namespace}/{service} at maintenance",
            lambda: self._read_service(target, service),
            lambda svc: plan_point(svc, mode.selector),
            self._patch_service(target, service),
        )
        selector = annotation(before, MAINTENANCE_SELECTOR) or before["spec"].get("selector")
        return StepResult(
            changed=scaled or pointed,
            summary=f"maintenance mode: {mode.describe()} ({mode.replicas} replicas)",
            before={"selector": json.dumps(selector, sort_keys=True)},
            after={
                "selector": json.dumps(mode.selector, sort_keys=True),
                "replicas": mode.replicas,
            },
        )

    @activity.defn(name="end_maintenance")
    def end_maintenance(self, target: RedisTarget) -> StepResult:
        """Back as it was before maintenance mode, as recorded then; what was not recorded is
        left for a person, and the summary says so."""
        mode = self._maintenance(target)
        if mode.env:
            container = self._targets.workload(target).api_container
            before, changed = self._api_env(
                target, "end maintenance mode", lambda d: plan_end_env(d, container, mode.env)
            )
            was = annotation(before, MAINTENANCE_ENV)
            if not isinstance(was, dict):
                return self._unrecorded(mode, "the env vars' values before it")
            return StepResult(changed=changed, summary="maintenance mode ended: env as before",
                              before=dict(mode.env), after=was)  # fmt: skip
        assert mode.deployment is not None and mode.service is not None
        deployment, service = mode.deployment, mode.service
        before, pointed = guarded_patch(
            f"point service {target.namespace}/{service} back",
            lambda: self._read_service(target, service),
            plan_point_back,
            self._patch_service(target, service),
        )
        if not isinstance(annotation(before, MAINTENANCE_SELECTOR), dict):
            return self._unrecorded(mode, f"service {service}'s selector before it")
        _, scaled = guarded_patch(
            f"scale maintenance deployment {target.namespace}/{deployment} back",
            lambda: self._read_deploy(target, deployment),
            plan_scale_back,
            self._patch_deploy(target, deployment),
        )
        selector = annotation(before, MAINTENANCE_SELECTOR)
        return StepResult(
            changed=pointed or scaled,
            summary=f"maintenance mode ended: service {service} back on its pods, "
            f"{deployment} scaled back",
            before={"selector": json.dumps(mode.selector, sort_keys=True)},
            after={"selector": json.dumps(selector, sort_keys=True)},
        )

    def _api_env(
        self, target: RedisTarget, what: str, plan: Callable[[JSONDict], list[JSONDict]]
    ) -> tuple[JSONDict, bool]:
        name = self._deployment(target)
        return guarded_patch(
            f"{what} on deployment {target.namespace}/{name}",
            lambda: self._read_deploy(target, name),
            plan,
            self._patch_deploy(target, name),
        )

    def _unrecorded(self, mode: MaintenanceMode, what: str) -> StepResult:
        return StepResult(
            changed=False,
            summary=f"maintenance mode NOT ended: {what} were not recorded; end it by hand "
            f"({mode.describe()})",
            after={"ended": 0},
        )
