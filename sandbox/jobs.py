"""The sandbox's Job controller (batch/v1), with the kubelet's part for the Jobs' pods: each
Job's pod runs its first container's command as a local process (sandbox.job_pods).

What it does, the way Kubernetes 1.33 does it, one pod at a time:

- a new Job gets `status.startTime` and a pod of its template, `<job>-<5 chars>`, owned by it
  (ownerReferences kind Job, controller true) and labelled `job-name`, `controller-uid` and
  their `batch.kubernetes.io/` forms (event SuccessfulCreate "Created pod: X"); while the pod
  runs, `status.active` and `status.ready` are 1;
- a pod that exits 0 counts in `status.succeeded`; once `spec.completions` (1) have, the Job
  gets `completionTime` and the conditions SuccessCriteriaMet then Complete (reason
  CompletionsReached; event Completed "Job completed");
- a pod that exits non-zero counts in `status.failed` and stays, Failed; a new pod replaces it
  while failures stay within `spec.backoffLimit` (6; no backoff delay in the sandbox), then the
  Job gets FailureTarget then Failed, reason BackoffLimitExceeded (a Warning event of that
  reason). Under restartPolicy OnFailure the container restarts in its pod instead, each
  restart counting against the limit;
- past `spec.activeDeadlineSeconds` from the start, the running pod's process is stopped and
  the pod deleted (events Killing, SuccessfulDelete), and the Job fails, reason
  DeadlineExceeded;
- `spec.ttlSecondsAfterFinished` after the Job finished, the Job is deleted; a deleted Job's
  pods are stopped and removed (however it was deleted), as the garbage collector and the
  kubelet do; a pod deleted while it runs counts as failed and is replaced.

Like kube-apiserver, the status leaves `active`, `succeeded` and `failed` out while they are 0
(the official client reads them as None), and always has `ready` and `terminating`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sandbox.deployments import SUFFIX_ALPHABET
from sandbox.job_pods import IMAGES, ContainerRun, PodProcesses, job_pod_status
from sandbox.kube.api import KubeAPI, now_iso
from sandbox.kube.defaults import DEFAULT_BACKOFF_LIMIT, pod_labels
from sandbox.kube.tables.format import parse_time

JSONDict = dict[str, Any]
PodKey = tuple[str, str]  # (namespace, pod)
COMPLETE = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
DEFAULT_GRACE_S = 30


class Notify(Protocol):
    """Controller.event: an Event about the object."""

    def __call__(
        self, obj: Mapping[str, Any], reason: str, message: str, warning: bool = False
    ) -> Awaitable[None]: ...


def job_owner(pod: Mapping[str, Any]) -> str | None:
    """The uid of the Job that controls the pod, if one does."""
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("controller"):
            return str(owner.get("uid"))
    return None


def finished(job: Mapping[str, Any]) -> JSONDict | None:
    """The Job's Complete or Failed condition, once it has one that is True."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return dict(condition)
    return None


def condition(kind: str, reason: tuple[str, str], now: str) -> JSONDict:
    return {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason[0], "message": reason[1]}  # fmt: skip


def counts(job: Mapping[str, Any]) -> tuple[int, int]:
    status = job.get("status") or {}
    return int(status.get("succeeded") or 0), int(status.get("failed") or 0)


def backoff_limit(job: Mapping[str, Any]) -> int:
    limit = (job.get("spec") or {}).get("backoffLimit")
    return DEFAULT_BACKOFF_LIMIT if limit is None else int(limit)


def set_count(status: JSONDict, field: str, value: int) -> None:
    """A count as kube-apiserver writes it: left out when it is 0 (omitempty)."""
    if value:
        status[field] = value
    else:
        status.pop(field, None)


def pod_manifest(job: Mapping[str, Any]) -> JSONDict:
    """A new pod of the Job's template, named, labelled and owned as the Job controller does."""
    meta = job["metadata"]
    template = job["spec"]["template"]
    template_meta = template.get("metadata") or {}
    suffix = "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(5))
    annotations = template_meta.get("annotations")
    pod: JSONDict = {
        "metadata": {
            "name": f"{meta['name'][:58]}-{suffix}",
            "generateName": f"{meta['name'][:58]}-",
            "namespace": meta["namespace"],
            "labels": {**pod_labels(meta["name"], meta["uid"]),
                       **(template_meta.get("labels") or {})},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {**template.get("spec", {}), "nodeName": "sandbox"},
        "status": {"phase": "Pending"},
    }  # fmt: skip
    if annotations:
        pod["metadata"]["annotations"] = dict(annotations)
    return pod


class JobController:
    """Reconciles every Job of the API server, once per controller pass (no timer of its own)."""

    def __init__(self, api: KubeAPI, root: Path, event: Notify, images: Path = IMAGES) -> None:
        self.api = api
        self.event = event
        self.kubelet = PodProcesses(api, root, images)
        self.current: dict[str, PodKey] = {}  # Job uid -> the pod it runs now
        self.started: dict[str, datetime] = {}  # Job uid -> when it started, to the microsecond

    def log_file(self, namespace: str, pod: str, container: str) -> Path | None:
        return self.kubelet.log_file(namespace, pod, container)

    def pid(self, namespace: str, pod: str) -> int | None:
        """The PID of the pod's process while it runs."""
        run = self.kubelet.runs.get((namespace, pod))
        return run.pid if run is not None else None

    async def shutdown(self) -> None:
        await self.kubelet.shutdown()

    def stop_all(self) -> None:
        self.kubelet.stop_all()

    async def reconcile(self) -> None:
        jobs = await self.api.list_objects("jobs")
        live = {job["metadata"]["uid"] for job in jobs}
        for uid in [u for u in self.current.keys() | self.started.keys() if u not in live]:
            self.current.pop(uid, None)
            self.started.pop(uid, None)
        await self.collect(live)
        for job in jobs:
            await self.reconcile_job(job)

    async def collect(self, live: set[str]) -> None:
        """Remove the pods of Jobs that are gone, and the pods being deleted (their process
        stopped first); forget the processes of pods removed at once (grace period 0)."""
        present: set[PodKey] = set()
        for pod in await self.api.list_objects("pods"):
            meta = pod["metadata"]
            owner = job_owner(pod)
            if owner is not None and (owner not in live or meta.get("deletionTimestamp")):
                await self.remove_pod(pod)
            else:
                present.add((meta["namespace"], meta["name"]))
        followed = set(self.current.values())
        for key in [k for k in self.kubelet.runs if k not in present and k not in followed]:
            await self.kubelet.stop(*key, grace=0)
            self.kubelet.forget(*key)

    async def remove_pod(self, pod: JSONDict) -> None:
        meta = pod["metadata"]
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        run = self.kubelet.runs.get((meta["namespace"], meta["name"]))
        if run is not None and run.pid is not None:
            await self.event(pod, "Killing", f"Stopping container {run.container}")
        await self.kubelet.stop(meta["namespace"], meta["name"], float(grace))
        await self.api.remove("pods", meta["namespace"], meta["name"])
        self.kubelet.forget(meta["namespace"], meta["name"])

    async def reconcile_job(self, job: JSONDict) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        uid = meta["uid"]
        if finished(job) is not None:
            await self.expire(job)
            return
        if spec.get("suspend"):
            return
        failure: tuple[str, str] | None = None
        if uid in self.current:
            job, failure = await self.follow(job, self.current[uid])
        if failure is None and self.past_deadline(job):
            failure = DEADLINE_EXCEEDED
        succeeded, failed = counts(job)
        if failure is None and failed > backoff_limit(job):
            failure = BACKOFF_EXCEEDED
        if failure is not None:
            await self.fail(job, failure)
        elif succeeded >= int(1 if spec.get("completions") is None else spec["completions"]):
            await self.complete(job)
        elif uid not in self.current:
            await self.start_pod(job)

    async def follow(self, job: JSONDict, key: PodKey) -> tuple[JSONDict, tuple[str, str] | None]:
        """The Job's current pod: still running, restarted in place, or done and counted (a
        pod deleted while it ran counts as failed). Returns the Job as it is now, and the
        failure the pod's end makes final, if any."""
        uid = job["metadata"]["uid"]
        run = self.kubelet.runs.get(key)
        pod = await self.api.get_object("pods", *key)
        if run is None or pod is None:  # deleted while it ran (collect() stopped it)
            if run is not None:
                await self.kubelet.stop(*key, grace=0)
                self.kubelet.forget(*key)
            self.current.pop(uid, None)
            return await self.count(job, succeeded=run is not None and run.exit_code() == 0), None
        code = run.exit_code()
        if code is None:
            return job, None
        if code != 0 and pod["spec"].get("restartPolicy") == "OnFailure":
            if run.restarts + 1 + counts(job)[1] > backoff_limit(job):
                return job, BACKOFF_EXCEEDED  # fail() deletes the pod and counts it
            await self.kubelet.start(pod)  # in place: the exit shows as its lastState
            await self.publish(pod, run)
            await self.event(pod, "Started", f"Started container {run.container}")
            return job, None
        await self.publish(pod, run)
        self.current.pop(uid, None)
        return await self.count(job, succeeded=code == 0), None

    def past_deadline(self, job: Mapping[str, Any]) -> bool:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        uid = job["metadata"]["uid"]
        began = self.started.get(uid) or parse_time((job.get("status") or {}).get("startTime"))
        if deadline is None or began is None:
            return False
        return (datetime.now(UTC) - began).total_seconds() >= float(deadline)

    # ------------------------------------------------------------------ pods

    async def start_pod(self, job: JSONDict) -> None:
        meta = job["metadata"]
        pod = await self.api.create("pods", pod_manifest(job))
        name = pod["metadata"]["name"]
        self.current[meta["uid"]] = (meta["namespace"], name)
        self.started.setdefault(meta["uid"], datetime.now(UTC))
        await self.event(job, "SuccessfulCreate", f"Created pod: {name}")
        run = await self.kubelet.start(pod)
        await self.publish(pod, run)
        if run.failure is not None:
            await self.event(pod, "Failed", f"Error: {run.failure}", warning=True)
        else:
            await self.event(pod, "Started", f"Started container {run.container}")
        ready = 1 if run.pid is not None else 0

        def change(obj: JSONDict) -> None:
            status = obj.setdefault("status", {})
            status.setdefault("startTime", now_iso())
            status.update(active=1, ready=ready, terminating=0, uncountedTerminatedPods={})

        await self.api.mutate("jobs", meta["namespace"], meta["name"], change)

    async def publish(self, pod: JSONDict, run: ContainerRun) -> None:
        """Write the pod's status as its process stands."""

        def change(obj: JSONDict) -> None:
            obj["status"] = job_pod_status(obj, run, obj.get("status") or {})

        meta = pod["metadata"]
        await self.api.mutate("pods", meta["namespace"], meta["name"], change)

    async def delete_pod(self, job: JSONDict, pod: JSONDict) -> None:
        """What the Job controller does to an active pod of a failed Job."""
        await self.remove_pod(pod)
        await self.event(job, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    # ------------------------------------------------------------------ the Job's status

    async def count(self, job: JSONDict, succeeded: bool) -> JSONDict:
        """One more pod done: no pod active any more."""

        def change(obj: JSONDict) -> None:
            status = obj.setdefault("status", {})
            done, failed = counts(obj)
            set_count(status, "succeeded", done + (1 if succeeded else 0))
            set_count(status, "failed", failed + (0 if succeeded else 1))
            status.pop("active", None)
            status.update(ready=0, terminating=0)

        meta = job["metadata"]
        return await self.api.mutate("jobs", meta["namespace"], meta["name"], change) or job

    async def complete(self, job: JSONDict) -> None:
        def change(obj: JSONDict) -> None:
            now = now_iso()
            status = obj.setdefault("status", {})
            conditions = status.setdefault("conditions", [])
            conditions += [condition("SuccessCriteriaMet", COMPLETE, now),
                           condition("Complete", COMPLETE, now)]  # fmt: skip
            status["completionTime"] = now

        meta = job["metadata"]
        await self.api.mutate("jobs", meta["namespace"], meta["name"], change)
        await self.event(job, "Completed", "Job completed")

    async def fail(self, job: JSONDict, reason: tuple[str, str]) -> None:
        """FailureTarget, then the running pod (if any) stopped and deleted, then Failed."""
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]

        def target(obj: JSONDict) -> None:
            conditions = obj.setdefault("status", {}).setdefault("conditions", [])
            if not any(c.get("type") == "FailureTarget" for c in conditions):
                conditions.append(condition("FailureTarget", reason, now_iso()))

        job = await self.api.mutate("jobs", namespace, name, target) or job
        key = self.current.pop(meta["uid"], None)
        pod = await self.api.get_object("pods", *key) if key else None
        if pod is not None:
            await self.delete_pod(job, pod)
            job = await self.count(job, succeeded=False)

        def failed(obj: JSONDict) -> None:
            status = obj.setdefault("status", {})
            status.setdefault("conditions", []).append(condition("Failed", reason, now_iso()))
            status.pop("active", None)
            status.update(ready=0, terminating=0)

        await self.api.mutate("jobs", namespace, name, failed)
        await self.event(job, reason[0], reason[1], warning=True)

    async def expire(self, job: JSONDict) -> None:
        """ttlSecondsAfterFinished: delete the Job that long after it finished (its pods go
        on the next pass, with it)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        ended = parse_time((finished(job) or {}).get("lastTransitionTime"))
        if ttl is None or ended is None:
            return
        if (datetime.now(UTC) - ended).total_seconds() >= float(ttl):
            meta = job["metadata"]
            await self.api.remove("jobs", meta["namespace"], meta["name"])
