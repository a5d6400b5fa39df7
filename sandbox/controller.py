"""The sandbox's control plane: it plays the StatefulSet and Deployment controllers, the
kubelet and the endpoints controller, with a real redis-server process behind every
StatefulSet pod.

It works on the API server's store directly (same event loop), so every change it makes gets
a resourceVersion and reaches watchers like a real controller's would. What it does, the way
Kubernetes does it:

- a StatefulSet pod template change (the rollout-restart annotation, a memory limit) gives a
  new updateRevision; pods of the old revision are deleted gracefully, highest ordinal first,
  and recreated at the new one; status (replicas, ready, current/updated, revisions,
  observedGeneration) follows, currentRevision moving once every pod is updated;
- a pod being deleted gracefully gets its container stopped (event Killing) and is removed;
  a missing pod is recreated (event SuccessfulCreate), its Redis started on the pod's own
  port and data dir, so DBSIZE survives when persistence is on (event Started);
- readiness is a real PING; the Service's Endpoints list the ready pods with their port;
- a Deployment's pods follow its spec (sandbox.deployments), with no process of their own;
  their log is the API's requests (sandbox.api_traffic);
- a Job's pod runs its command as a local process until it exits (sandbox.jobs);
- faults (see sandbox.kube.faults) are read from the StatefulSet's annotation;
- the pods of a StatefulSet whose template carries SENTINEL_ANNOTATION replicate under the
  Sentinels (sandbox.sentinel): a container starts as a replica of the master the Sentinels
  name, as a real pod's init script asks them (with no Sentinel answering, ordinal 0 is the
  master), and each pod's ROLE_LABEL follows its Redis' INFO role, as the labelling sidecar
  of real charts keeps it, so a Service selecting the master follows a failover.

Each pod carries the annotation `sandbox.redis-runbook.io/restarts` (how many times its Redis
was started after the first), so tests can assert "restarted exactly once".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from sandbox import faults
from sandbox.api_traffic import API_CONTAINER, ApiTraffic
from sandbox.deployments import DeploymentController
from sandbox.jobs import JobController
from sandbox.kube.api import KubeAPI, now_iso
from sandbox.kube.faults import Fault
from sandbox.manifests import (
    FAULT_ANNOTATION,
    PORT_ANNOTATION,
    RESTARTS_ANNOTATION,
    ROLE_LABEL,
    SENTINEL_ANNOTATION,
)
from sandbox.processes import RedisProcess
from sandbox.redis_conf import config_file, redis_options
from sandbox.sentinel import SentinelGroup

log = logging.getLogger(__name__)
JSONDict = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
CRASHLOOP_RETRY_SECONDS = 1.0
REDIS_CONTAINER = "redis"  # the container whose process is the real redis-server
UNSCHEDULABLE = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
ONE_POD_FAULTS = (Fault.MASTER_DOWN, Fault.NO_QUORUM, Fault.REPLICA_CUT_OFF)
WRITE_FAULTS = (Fault.OOM, Fault.FULL)  # under Sentinel, the master's alone


def template_revision(name: str, template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return f"{name}-{digest[:10]}"


@dataclass
class PodRuntime:
    """The kubelet's side of one pod name: a Redis process that keeps its port and data dir
    across pod incarnations, like a StatefulSet pod keeps its identity and volume."""

    name: str
    process: RedisProcess
    uid: str | None = None  # the pod incarnation the container belongs to
    started_in_pod: bool = False  # a start in the same incarnation is an in-place restart
    starts: int = 0
    restart_count: int = 0  # in-place container restarts of this incarnation
    crashing: bool = False
    last_crash: float = 0.0
    started_at: str | None = None
    terminated: JSONDict | None = None  # current state, when the container is not running
    last_state: JSONDict = field(default_factory=dict)
    held: list[redis.Redis] = field(default_factory=list)
    full: bool = False  # the `full` fault's keys and policy are in this Redis
    frozen: bool = False  # SIGSTOPped by `replica-cut-off`: SIGCONT before anything else

    def release_connections(self) -> None:
        for conn in self.held:
            with contextlib.suppress(redis.RedisError, OSError):
                conn.close()
        self.held = []

    def thaw(self) -> None:
        """SIGCONT a frozen Redis: a stopped process would not act on SIGTERM."""
        pid = self.process.pid
        if self.frozen and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = False


class Controller:
    """Reconciles every StatefulSet, Deployment, Job and Service of the API server, every
    `tick`."""

    def __init__(
        self, api: KubeAPI, root: Path, tick: float = 0.05, api_traffic: float | None = None
    ) -> None:
        """`api_traffic`: seconds between two requests of each API pod (None: no traffic)."""
        self.api = api
        self.root = root
        self.tick = tick
        self.traffic = ApiTraffic(api, root, api_traffic)
        self.deployments = DeploymentController(api, self.event, self.traffic.started)
        self.jobs = JobController(api, root, self.event)
        self.runtimes: dict[tuple[str, str], PodRuntime] = {}
        self.applied_faults: dict[tuple[str, str], str] = {}
        self.faults_done: dict[tuple[str, str], str] = {}  # injected (read by other threads)
        self.stashed_policies: dict[str, list[JSONDict]] = {}  # what a lockdown replaced
        self.sentinels: SentinelGroup | None = None  # set once they run (SandboxCluster)
        self._stopping: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Reconcile until shutdown(); one failing pass is logged, never fatal."""
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        traffic = asyncio.ensure_future(self.traffic.run(is_api_pod))
        try:
            while not self._stopping.is_set():
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("sandbox controller pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.tick)
        finally:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
            try:
                await self.jobs.shutdown()  # no Job's process outlives the controller
            except Exception:
                log.exception("sandbox controller could not stop the Jobs' processes")
            self._stopped.set()

    async def shutdown(self) -> None:
        """Let the current pass finish (no process is left half-started), then stop."""
        if self._stopping is not None and self._stopped is not None:
            self._stopping.set()
            await self._stopped.wait()

    def stop_all(self) -> None:
        """Stop every redis-server and Job process this controller started, by PID."""
        for runtime in self.runtimes.values():
            runtime.release_connections()
            runtime.thaw()
            runtime.process.stop()
        self.jobs.stop_all()

    def log_file(self, namespace: str, pod: str, container: str) -> Path | None:
        """What `kubectl logs` reads: a Job process' output, the redis-server's own log, the
        API pods' request log (other containers write none)."""
        ran = self.jobs.log_file(namespace, pod, container)
        if ran is not None:
            return ran
        runtime = self.runtimes.get((namespace, pod))
        if runtime is not None and container == REDIS_CONTAINER:
            return runtime.process.data_dir / "redis.log"
        return self.traffic.log_path(namespace, pod) if container == API_CONTAINER else None

    def runtime(self, namespace: str, pod: str) -> PodRuntime:
        key = (namespace, pod)
        if key not in self.runtimes:
            data_dir = self.root / "pods" / namespace / pod
            self.runtimes[key] = PodRuntime(name=pod, process=RedisProcess(data_dir))
        return self.runtimes[key]

    async def reconcile(self) -> None:
        for sts in await self.api.list_objects("statefulsets"):
            await self.reconcile_statefulset(sts)
        for deploy in await self.api.list_objects("deployments"):
            await self.deployments.reconcile(deploy)
        await self.jobs.reconcile()
        for service in await self.api.list_objects("services"):
            await self.reconcile_endpoints(service)

    # ------------------------------------------------------------------ events

    async def event(
        self, obj: Mapping[str, Any], reason: str, message: str, warning: bool = False
    ) -> None:
        meta = obj["metadata"]
        stamp = now_iso()
        await self.api.create(
            "events",
            {
                "metadata": {
                    "name": f"{meta['name']}.{secrets.token_hex(8)}",
                    "namespace": meta["namespace"],
                },
                "involvedObject": {
                    "kind": obj.get("kind"),
                    "apiVersion": obj.get("apiVersion"),
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta.get("uid"),
                },
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": "kubelet" if obj.get("kind") == "Pod" else "controller"},
            },
        )

    # ------------------------------------------------------------------ StatefulSets

    async def reconcile_statefulset(self, sts: JSONDict) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        namespace, name = meta["namespace"], meta["name"]
        update_revision = template_revision(name, spec["template"])
        replicas = int(spec.get("replicas", 1))
        await self.apply_fault(sts, replicas)

        pods: list[JSONDict] = []
        rolled = False
        for ordinal in range(replicas):
            pod = await self.reconcile_pod(sts, ordinal, update_revision, may_roll=not rolled)
            if pod is not None:
                pods.append(pod)
                rolled = rolled or bool(pod["metadata"].get("deletionTimestamp"))
        for extra in await self.api.list_objects("pods", namespace):  # scaled down
            owners = extra["metadata"].get("ownerReferences") or []
            ordinal_text = extra["metadata"]["name"].rsplit("-", 1)[-1]
            ours = any(o.get("uid") == meta["uid"] for o in owners)
            if ours and ordinal_text.isdigit() and int(ordinal_text) >= replicas:
                await self.terminate(extra, force=True)
        await self.update_statefulset_status(sts, pods, update_revision)

    async def update_statefulset_status(
        self, sts: JSONDict, pods: list[JSONDict], update_revision: str
    ) -> None:
        meta = sts["metadata"]
        replicas = int(sts["spec"].get("replicas", 1))
        old = sts.get("status") or {}
        current_revision = old.get("currentRevision") or update_revision
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in live if pod_ready(p))
        updated = sum(1 for p in live if p["metadata"]["labels"][REVISION_LABEL] == update_revision)
        current = sum(
            1 for p in live if p["metadata"]["labels"][REVISION_LABEL] == current_revision
        )
        if updated == replicas and ready == replicas:
            current_revision, current = update_revision, updated
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": 0,
        }

        def change(obj: JSONDict) -> None:
            obj["status"] = status

        await self.api.mutate("statefulsets", meta["namespace"], meta["name"], change)

    async def reconcile_pod(
        self, sts: JSONDict, ordinal: int, update_revision: str, may_roll: bool
    ) -> JSONDict | None:
        namespace = sts["metadata"]["namespace"]
        name = f"{sts['metadata']['name']}-{ordinal}"
        runtime = self.runtime(namespace, name)
        pod = await self.api.get_object("pods", namespace, name)
        if pod is not None and runtime.uid not in (None, pod["metadata"]["uid"]):
            runtime.uid = None  # replaced behind our back: impossible, but start over
        if pod is None:
            if runtime.uid is not None:  # removed without us: a force delete (grace 0)
                await self.stop_container(runtime, crashing_ends=True)
                runtime.uid = None
            return await self.create_pod(sts, ordinal, update_revision)
        if pod["metadata"].get("deletionTimestamp"):
            return await self.kubelet_terminate(pod, runtime)
        revision = pod["metadata"]["labels"].get(REVISION_LABEL)
        if revision != update_revision and may_roll:
            await self.event(sts, "SuccessfulDelete", f"delete Pod {name} in StatefulSet")
            return await self.terminate(pod, force=False)
        return await self.kubelet_sync(sts, pod, runtime)

    async def create_pod(self, sts: JSONDict, ordinal: int, revision: str) -> JSONDict:
        meta = sts["metadata"]
        template = sts["spec"]["template"]
        name = f"{meta['name']}-{ordinal}"
        runtime = self.runtime(meta["namespace"], name)
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            REVISION_LABEL: revision,
            POD_NAME_LABEL: name,
        }
        annotations = {
            **((template.get("metadata") or {}).get("annotations") or {}),
            RESTARTS_ANNOTATION: str(max(0, runtime.starts)),
            PORT_ANNOTATION: str(runtime.process.port),
        }
        claim_names = [c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates") or []]
        claims = [
            {"name": claim, "persistentVolumeClaim": {"claimName": f"{claim}-{name}"}}
            for claim in claim_names
        ]
        spec = {**template["spec"], "hostname": name, "subdomain": sts["spec"].get("serviceName")}
        spec["volumes"] = [*(spec.get("volumes") or []), *claims]
        pod = await self.api.create(
            "pods",
            {
                "metadata": {
                    "name": name,
                    "namespace": meta["namespace"],
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "StatefulSet",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": spec,
                "status": {"phase": "Pending", "conditions": []},
            },
        )
        runtime.uid = pod["metadata"]["uid"]
        runtime.restart_count = 0
        runtime.started_in_pod = False
        runtime.last_state = {}
        runtime.terminated = None
        await self.event(sts, "SuccessfulCreate", f"create Pod {name} in StatefulSet successful")
        return await self.kubelet_sync(sts, pod, runtime)

    async def terminate(self, pod: JSONDict, force: bool) -> JSONDict | None:
        """Delete like the API does for a controller: gracefully, or at once when forced."""
        meta = pod["metadata"]
        if force:
            runtime = self.runtime(meta["namespace"], meta["name"])
            await self.stop_container(runtime, crashing_ends=True)
            runtime.uid = None
            await self.api.remove("pods", meta["namespace"], meta["name"])
            return None

        def mark(obj: JSONDict) -> None:
            obj["metadata"].setdefault("deletionTimestamp", now_iso())
            obj["metadata"].setdefault("deletionGracePeriodSeconds", 30)

        return await self.api.mutate("pods", meta["namespace"], meta["name"], mark)

    async def kubelet_terminate(self, pod: JSONDict, runtime: PodRuntime) -> JSONDict | None:
        """A pod being deleted: stop its container, then remove it. A crash-looping pod's
        kubelet is wedged: it stays Terminating until force-deleted or the fault clears."""
        if runtime.crashing:
            return pod
        meta = pod["metadata"]
        if runtime.process.pid is not None:
            await self.event(pod, "Killing", "Stopping container redis")
        await self.stop_container(runtime, crashing_ends=False)
        runtime.uid = None
        await self.api.remove("pods", meta["namespace"], meta["name"])
        return None

    async def stop_container(self, runtime: PodRuntime, crashing_ends: bool) -> None:
        runtime.release_connections()
        runtime.thaw()
        await asyncio.to_thread(runtime.process.stop)
        if crashing_ends:
            runtime.crashing = False

    async def start_container(self, pod: JSONDict, runtime: PodRuntime, in_place: bool) -> None:
        """Start Redis with the config the pod's container asks for; count the restart."""
        container = redis_container(pod)
        options = redis_options(container, await self.config_text(pod, container))
        replicaof = await self.replicaof(pod, runtime)
        runtime.process.config = {"save": "", "appendonly": "no", **options, **replicaof}
        runtime.starts += 1  # counted first: whoever sees it answer PING sees the count
        await asyncio.to_thread(runtime.process.start)
        runtime.started_in_pod = True
        if in_place:
            runtime.restart_count += 1
        runtime.started_at = now_iso()
        runtime.terminated = None
        await self.event(pod, "Started", f"Started container {container['name']}")

    async def replicaof(self, pod: JSONDict, runtime: PodRuntime) -> dict[str, str]:
        """What a Sentinel pod's init script adds: `replicaof` the master the Sentinels name
        (nothing if they name this pod); with no Sentinel answering, ordinal 0 is the master
        and the others replicate it."""
        annotations = pod["metadata"].get("annotations") or {}
        if SENTINEL_ANNOTATION not in annotations:
            return {}
        port = None
        if self.sentinels is not None:
            port = await asyncio.to_thread(self.sentinels.master_port)
        if port is None:
            first = f"{pod['metadata']['name'].rsplit('-', 1)[0]}-0"
            port = self.runtime(pod["metadata"]["namespace"], first).process.port
        if port == runtime.process.port:
            return {}
        return {"replicaof": f"127.0.0.1 {port}"}

    async def config_text(self, pod: JSONDict, container: JSONDict) -> str | None:
        """The config file the container names, from its ConfigMap as mounted now; a missing
        ConfigMap or key starts Redis without it (a real kubelet would not start the pod:
        the sandbox keeps Redis up and says so in an event)."""
        source = config_file(pod, container)
        if source is None:
            return None
        found = await self.api.get_object("configmaps", pod["metadata"]["namespace"], source[0])
        text = ((found or {}).get("data") or {}).get(source[1])
        if text is None:
            await self.event(pod, "FailedMount", f'configmap "{source[0]}" key "{source[1]}" '
                             "not found", warning=True)  # fmt: skip
        return None if text is None else str(text)

    async def kubelet_sync(self, sts: JSONDict, pod: JSONDict, runtime: PodRuntime) -> JSONDict:
        """Run the pod's container if it can run, and publish what it is doing."""
        meta = pod["metadata"]
        runtime.uid = meta["uid"]
        scheduled = await self.volumes_bound(pod)
        if not scheduled:
            if runtime.process.pid is not None:
                await self.stop_container(runtime, crashing_ends=False)
            if condition(pod, "PodScheduled") != "False":
                await self.event(pod, "FailedScheduling", UNSCHEDULABLE, warning=True)
        elif runtime.crashing:
            loop = asyncio.get_running_loop()
            if loop.time() - runtime.last_crash >= CRASHLOOP_RETRY_SECONDS:
                runtime.last_crash = loop.time()
                runtime.restart_count += 1
                runtime.last_state = {
                    "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": now_iso()}
                }
                await self.event(
                    pod, "BackOff", "Back-off restarting failed container redis", warning=True
                )
        elif runtime.process.pid is None and runtime.terminated is None:
            await self.start_container(pod, runtime, in_place=runtime.started_in_pod)
        alive = (
            runtime.process.pid is not None
            and not runtime.frozen  # its probe would time out: no need to wait for that
            and await asyncio.to_thread(ping, runtime.process)
        )
        status = pod_status(pod, runtime, scheduled=scheduled, alive=alive)
        restarts = str(max(0, runtime.starts - 1))
        role = None
        if alive and SENTINEL_ANNOTATION in (meta.get("annotations") or {}):
            role = await asyncio.to_thread(replication_role, runtime.process)

        def change(obj: JSONDict) -> None:
            obj["status"] = merge_conditions(obj.get("status") or {}, status)
            obj["metadata"].setdefault("annotations", {})[RESTARTS_ANNOTATION] = restarts
            if role is not None:  # a Redis that does not answer keeps the label it had
                obj["metadata"].setdefault("labels", {})[ROLE_LABEL] = role

        updated = await self.api.mutate("pods", meta["namespace"], meta["name"], change)
        return updated or pod

    async def volumes_bound(self, pod: JSONDict) -> bool:
        for volume in pod["spec"].get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                pvc = await self.api.get_object(
                    "persistentvolumeclaims", pod["metadata"]["namespace"], claim
                )
                if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
                    return False
        return True

    # ------------------------------------------------------------------ faults

    async def apply_fault(self, sts: JSONDict, replicas: int) -> None:
        meta = sts["metadata"]
        key = (meta["namespace"], meta["name"])
        wanted = (meta.get("annotations") or {}).get(FAULT_ANNOTATION) or Fault.CLEAR.value
        if self.applied_faults.get(key, Fault.CLEAR.value) == wanted:
            return
        self.applied_faults[key] = wanted
        runtimes = [self.runtime(meta["namespace"], f"{meta['name']}-{i}") for i in range(replicas)]
        try:
            await self.clear_faults(sts, runtimes)
            if wanted not in set(Fault):
                log.warning("unknown sandbox fault %r on %s/%s", wanted, *key)
                return
            fault = Fault(wanted)
            if fault in ONE_POD_FAULTS:
                await self.inject_one(runtimes, fault)
                return
            if fault in WRITE_FAULTS and under_sentinel(sts):
                runtimes = (await self.by_role(runtimes))[0][:1]  # a replica refuses writes
            for runtime in runtimes:
                await self.inject(sts, runtime, fault)
        finally:
            self.faults_done[key] = wanted

    async def clear_faults(self, sts: JSONDict, runtimes: list[PodRuntime]) -> None:
        lockdown = lockdown_policy(sts)["metadata"]
        await self.api.remove("networkpolicies", lockdown["namespace"], lockdown["name"])
        for policy in self.stashed_policies.pop(lockdown["name"], []):
            await self.api.create("networkpolicies", policy)
        if self.sentinels is not None:  # those `no-quorum` stopped
            await asyncio.to_thread(self.sentinels.start_stopped)
        for runtime in runtimes:
            runtime.release_connections()
            runtime.thaw()
            if runtime.full:
                await self.empty_full(sts["metadata"]["namespace"], runtime)
            runtime.crashing = False
            runtime.terminated = None  # the kubelet restarts a dead Redis on its next pass
        for pvc in await self.api.list_objects(
            "persistentvolumeclaims", sts["metadata"]["namespace"], {"app": sts["metadata"]["name"]}
        ):
            await self.api.mutate(
                "persistentvolumeclaims",
                pvc["metadata"]["namespace"],
                pvc["metadata"]["name"],
                lambda obj: obj["status"].update(phase="Bound"),
            )

    async def empty_full(self, namespace: str, runtime: PodRuntime) -> None:
        """Undo `full`: the batch job's keys go, and the policy is again the one Redis would
        start with (a restart alone would not do: the keys are in its AOF)."""
        runtime.full = False
        if runtime.process.pid is None:
            return
        policy = await self.configured_policy(namespace, runtime)
        try:
            with runtime.process.client() as conn:
                await asyncio.to_thread(faults.clear_fill, conn, policy)
        except (redis.RedisError, OSError):
            log.exception("sandbox controller could not undo fault full on %s", runtime.name)

    async def configured_policy(self, namespace: str, runtime: PodRuntime) -> str:
        """The maxmemory-policy of the ConfigMap's redis.conf and the container's args, as
        Redis would start with them now (with them as it started, once the pod is gone)."""
        options: Mapping[str, str] = runtime.process.config
        pod = await self.api.get_object("pods", namespace, runtime.name)
        if pod is not None:
            container = redis_container(pod)
            options = redis_options(container, await self.config_text(pod, container))
        return options.get("maxmemory-policy", "noeviction")

    async def lock_down(self, sts: JSONDict) -> None:
        """The lockdown replaces the policies that let anyone in (their rules would add up
        with it and keep the API admitted); clearing the fault puts them back."""
        lockdown = lockdown_policy(sts)
        meta = lockdown["metadata"]
        selector = lockdown["spec"]["podSelector"]["matchLabels"]
        stashed = self.stashed_policies.setdefault(meta["name"], [])
        for policy in await self.api.list_objects("networkpolicies", meta["namespace"]):
            if ((policy.get("spec") or {}).get("podSelector") or {}).get("matchLabels") == selector:
                await self.api.remove(
                    "networkpolicies", meta["namespace"], policy["metadata"]["name"]
                )
                kept = {
                    k: v
                    for k, v in policy["metadata"].items()
                    if k in ("name", "namespace", "labels")
                }
                stashed.append({"metadata": kept, "spec": policy["spec"]})
        await self.api.create("networkpolicies", lockdown)

    async def inject(self, sts: JSONDict, runtime: PodRuntime, fault: Fault) -> None:
        proc = runtime.process
        if fault in (Fault.DOWN, Fault.CRASHLOOP):
            await asyncio.to_thread(proc.kill)
            runtime.terminated = {"exitCode": 137, "reason": "Error", "finishedAt": now_iso()}
            runtime.crashing = fault is Fault.CRASHLOOP
        elif fault is Fault.OOM and proc.pid is not None:
            await asyncio.to_thread(proc.kill)
            runtime.last_state = {
                "terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": now_iso()}
            }
            pod = await self.api.get_object("pods", sts["metadata"]["namespace"], runtime.name)
            if pod is not None:
                await self.event(pod, "OOMKilled", "Container redis was OOMKilled", warning=True)
                await self.start_container(pod, runtime, in_place=True)
            await asyncio.to_thread(faults.fill_memory_until_refused, proc.client())
        elif fault is Fault.FULL and proc.pid is not None:
            runtime.full = True  # set first: a fill cut short is undone all the same
            with proc.client() as conn:
                await asyncio.to_thread(faults.fill_without_ttl, conn)
        elif fault is Fault.CONNECTIONS and proc.pid is not None:
            maxclients = int(proc.config.get("maxclients", "10000"))
            # under Sentinel, the replicas' and Sentinels' own connections hold slots too
            taken = await asyncio.to_thread(other_clients, proc) if under_sentinel(sts) else 0
            runtime.held = await asyncio.to_thread(
                faults.hold_connections, proc.port, maxclients - 2 - taken
            )
        elif fault is Fault.SLOW and proc.pid is not None:
            await asyncio.to_thread(faults.slow_commands, proc.client(), 0.02, 3)
        elif fault is Fault.CUT_OFF:
            await self.lock_down(sts)
        elif fault is Fault.PVC_UNBOUND:
            for pvc in await self.api.list_objects(
                "persistentvolumeclaims",
                sts["metadata"]["namespace"],
                {"app": sts["metadata"]["name"]},
            ):
                await self.api.mutate(
                    "persistentvolumeclaims",
                    pvc["metadata"]["namespace"],
                    pvc["metadata"]["name"],
                    lambda obj: obj["status"].update(phase="Pending"),
                )

    async def by_role(
        self, runtimes: list[PodRuntime]
    ) -> tuple[list[PodRuntime], list[PodRuntime]]:
        """(masters, replicas) as their Redis says now, the master the Sentinels name first
        (two may say master for a while, when an old master comes back)."""
        roles = await asyncio.gather(
            *(asyncio.to_thread(replication_role, r.process) for r in runtimes)
        )
        masters = [r for r, role in zip(runtimes, roles, strict=True) if role == "master"]
        replicas = [r for r, role in zip(runtimes, roles, strict=True) if role == "replica"]
        named = await asyncio.to_thread(self.sentinels.master_port) if self.sentinels else None
        masters.sort(key=lambda r: r.process.port != named)
        return masters, replicas

    async def inject_one(self, runtimes: list[PodRuntime], fault: Fault) -> None:
        """The Sentinel topology's faults hit one pod, picked by what its Redis says now."""
        masters, replicas = await self.by_role(runtimes)
        if fault is Fault.REPLICA_CUT_OFF:
            pid = replicas[-1].process.pid if replicas else None
            if pid is not None:
                os.kill(pid, signal.SIGSTOP)
                replicas[-1].frozen = True
            return
        if fault is Fault.NO_QUORUM and self.sentinels is not None:
            await asyncio.to_thread(self.sentinels.stop_some, 2)
        if masters:
            await asyncio.to_thread(masters[0].process.kill)
            masters[0].terminated = {"exitCode": 137, "reason": "Error", "finishedAt": now_iso()}

    # ------------------------------------------------------------------ Services

    async def reconcile_endpoints(self, service: JSONDict) -> None:
        meta = service["metadata"]
        selector = (service.get("spec") or {}).get("selector") or {}
        pods = await self.api.list_objects("pods", meta["namespace"], selector) if selector else []
        subsets = []
        for pod in pods:
            port = int(pod["metadata"].get("annotations", {}).get(PORT_ANNOTATION, 0))
            address = {
                "ip": "127.0.0.1",
                "hostname": pod["metadata"]["name"],
                "targetRef": {
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": meta["namespace"],
                    "uid": pod["metadata"]["uid"],
                },
            }
            ready = pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")
            subsets.append(
                {
                    "addresses" if ready else "notReadyAddresses": [address],
                    "ports": [{"name": "redis", "port": port, "protocol": "TCP"}],
                }
            )
        body = {
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "subsets": subsets,
        }
        if await self.api.get_object("endpoints", meta["namespace"], meta["name"]) is None:
            await self.api.create("endpoints", body)
        else:
            await self.api.mutate(
                "endpoints",
                meta["namespace"],
                meta["name"],
                lambda obj: obj.update(subsets=subsets),
            )


# ---------------------------------------------------------------------- pure helpers


def lockdown_policy(sts: Mapping[str, Any]) -> JSONDict:
    """What someone applies in a hurry: the Redis pods isolated, nothing admitted."""
    labels = (sts["spec"]["template"].get("metadata") or {}).get("labels") or {}
    return {
        "metadata": {"name": f"{sts['metadata']['name']}-lockdown",
                     "namespace": sts["metadata"]["namespace"]},
        "spec": {"podSelector": {"matchLabels": {"app": labels.get("app", "redis")}},
                 "policyTypes": ["Ingress"], "ingress": []},
    }  # fmt: skip


def under_sentinel(sts: Mapping[str, Any]) -> bool:
    """Whether the StatefulSet's pods replicate under Sentinel (its template says so)."""
    meta = sts["spec"]["template"].get("metadata") or {}
    return SENTINEL_ANNOTATION in (meta.get("annotations") or {})


def other_clients(proc: RedisProcess) -> int:
    """The clients connected to the process, but the one asking."""
    with proc.client(socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
        return int(conn.info("clients")["connected_clients"]) - 1


def is_api_pod(pod: Mapping[str, Any]) -> bool:
    """A pod of a Deployment whose container is the application's (not a Redis pod, nor a
    Job's pod, even one in the application's image: it serves no requests)."""
    owners = pod["metadata"].get("ownerReferences") or []
    names = {c["name"] for c in pod["spec"]["containers"]}
    return API_CONTAINER in names and any(o.get("kind") == "ReplicaSet" for o in owners)


def redis_container(pod: Mapping[str, Any]) -> JSONDict:
    containers = pod["spec"]["containers"]
    return dict(next((c for c in containers if c["name"] == REDIS_CONTAINER), containers[0]))


def ping(proc: RedisProcess) -> bool:
    """The readiness probe: one PING on a connection closed right after."""
    try:
        with proc.client(socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
            return bool(conn.ping())
    except (redis.RedisError, OSError):
        return False


def replication_role(proc: RedisProcess) -> str | None:
    """`master` or `replica`, from the process' INFO replication; None if it does not answer."""
    if proc.pid is None:
        return None
    try:
        with proc.client(socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
            role = str(conn.info("replication").get("role"))
    except (redis.RedisError, OSError):
        return None
    return "master" if role == "master" else "replica"


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def merge_conditions(old: Mapping[str, Any], new: JSONDict) -> JSONDict:
    """Keep lastTransitionTime of conditions whose status did not change."""
    before = {c["type"]: c for c in old.get("conditions") or []}
    for condition in new.get("conditions") or []:
        previous = before.get(condition["type"])
        if previous and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get("lastTransitionTime")
    if old.get("startTime") and new.get("startTime"):
        new["startTime"] = old["startTime"]
    return new


def condition(pod: Mapping[str, Any], kind: str) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def _container_state(runtime: PodRuntime, scheduled: bool) -> JSONDict:
    if not scheduled:
        return {"waiting": {"reason": "ContainerCreating"}}
    if runtime.crashing:
        message = f"back-off 10s restarting failed container=redis pod={runtime.name}"
        return {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
    if runtime.terminated is not None:
        return {"terminated": dict(runtime.terminated)}
    if runtime.process.pid is not None:
        return {"running": {"startedAt": runtime.started_at}}
    return {"waiting": {"reason": "ContainerCreating"}}


def pod_status(
    pod: Mapping[str, Any], runtime: PodRuntime, scheduled: bool, alive: bool
) -> JSONDict:
    """The status a kubelet would report for the pod, from its Redis process."""
    redis_name = redis_container(pod)["name"]
    statuses = []
    for container in pod["spec"]["containers"]:
        if container["name"] == redis_name:
            state = _container_state(runtime, scheduled)
            ready = alive and "running" in state
            restarts, last = runtime.restart_count, runtime.last_state
        else:  # sidecars have no process in the sandbox: they run once the pod is scheduled
            state = (
                {"running": {"startedAt": runtime.started_at or now_iso()}}
                if scheduled
                else {"waiting": {"reason": "ContainerCreating"}}
            )
            ready, restarts, last = scheduled, 0, {}
        statuses.append(
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": ready,
                "started": "running" in state,
                "restartCount": restarts,
                "state": state,
                "lastState": last,
            }
        )
    all_ready = all(s["ready"] for s in statuses)
    now = now_iso()

    def cond(
        kind: str, ok: bool, reason: str | None = None, message: str | None = None
    ) -> JSONDict:
        found: JSONDict = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastTransitionTime": now,
        }
        if not ok and reason:
            found.update(reason=reason, message=message or "")
        return found

    status: JSONDict = {
        "phase": "Running" if scheduled else "Pending",
        "conditions": [
            cond("PodScheduled", scheduled, "Unschedulable", UNSCHEDULABLE),
            cond("Initialized", True),
            cond("ContainersReady", all_ready, "ContainersNotReady"),
            cond("Ready", all_ready, "ContainersNotReady"),
        ],
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    }
    if scheduled:
        status.update(hostIP="127.0.0.1", podIP="127.0.0.1", startTime=now)
    return status
