"""The runbook's warm script as it is meant to run: in the application's own image, as a
Kubernetes Job made from the target's template (`python scripts/warm_cache.py
--critical-only`), waited for and reported.

One Job per warm step: its name comes from the workflow and the activity (a retry of the same
step finds the Job it already made and waits for that one instead of starting another), and it
runs once unless the template sets `backoffLimit`. Kubernetes ends it after the warmer's
timeout (`activeDeadlineSeconds`) and removes it an hour after it finished
(`ttlSecondsAfterFinished`), unless the template says otherwise."""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from activities.kubernetes.client import RETRYABLE_TRANSPORT, read_json, status_message
from activities.warming.models import Warmer
from contracts.target import RedisTarget

KEY_LABEL = "redis-runbook.io/warm-key"
MANAGED = {"app.kubernetes.io/managed-by": "redis-runbook"}
GRACE_S = 30.0  # past activeDeadlineSeconds, for Kubernetes to mark the Job Failed
JSONDict = dict[str, Any]


def step_key(workflow_id: str, run_id: str, activity_id: str) -> str:
    """The same for every attempt of one warm step, different for the next step."""
    return hashlib.sha256(f"{workflow_id}/{run_id}/{activity_id}".encode()).hexdigest()[:10]


def job_manifest(warmer: Warmer, target: RedisTarget, name: str, key: str) -> JSONDict:
    job: JSONDict = copy.deepcopy(warmer.job or {})
    meta = job.setdefault("metadata", {})
    meta.pop("generateName", None)
    meta.update(name=f"{warmer.name}-{key}", namespace=target.namespace)
    meta["labels"] = {**(meta.get("labels") or {}), **MANAGED, KEY_LABEL: key}
    meta["annotations"] = {**(meta.get("annotations") or {}), "redis-runbook.io/target": name}
    job.update(apiVersion="batch/v1", kind="Job")
    spec = job.setdefault("spec", {})
    spec.setdefault("backoffLimit", 0)
    spec.setdefault("activeDeadlineSeconds", max(1, int(warmer.timeout_s)))
    spec.setdefault("ttlSecondsAfterFinished", 3600)
    spec["template"].setdefault("spec", {}).setdefault("restartPolicy", "Never")
    return job


def finished(job: JSONDict) -> tuple[bool, str] | None:
    """(succeeded, why) once the Job has a Complete or Failed condition."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, "completed"
        if condition.get("type") == "Failed":
            why = ": ".join(filter(None, (condition.get("reason"), condition.get("message"))))
            return False, why or "failed"
    return None


class JobWarmer:
    """Creates a warmer's Job and waits for it, with the worker's Kubernetes client."""

    def __init__(self, api: client.ApiClient | None, timeouts: tuple[float, float]) -> None:
        self._api = api
        self._timeouts = timeouts

    def run(self, warmer: Warmer, target: RedisTarget, name: str, key: str) -> str:
        """'job X completed in Ns', or 'failed: ...' (never raises: a broken warmer is
        reported). Blocking: the activity runs it in a thread and heartbeats meanwhile."""
        if self._api is None:
            return "failed: Kubernetes is not configured for this worker"
        batch = client.BatchV1Api(self._api)
        manifest = job_manifest(warmer, target, name, key)
        job_name, namespace = manifest["metadata"]["name"], target.namespace
        began = time.monotonic()
        refused = self._create(batch, manifest)
        if refused is not None:
            return refused
        deadline = began + warmer.timeout_s + GRACE_S
        while time.monotonic() < deadline:
            try:
                job = read_json(batch.read_namespaced_job, job_name, namespace,
                                timeout=self._timeouts)  # fmt: skip
            except ApiException as err:
                if err.status == 404:
                    return f"failed: job {job_name} was deleted before it finished"
                job = {}  # a passing API error: look again
            except RETRYABLE_TRANSPORT:
                job = {}
            done = finished(job)
            if done is not None:
                ok, why = done
                took = time.monotonic() - began
                if ok:
                    return f"job {job_name} completed in {took:.1f}s"
                return f"failed: job {job_name}: {why}"
            time.sleep(warmer.poll_s)
        return f"failed: job {job_name} did not finish within {warmer.timeout_s:.0f}s"

    def _create(self, batch: client.BatchV1Api, manifest: JSONDict) -> str | None:
        """None once the Job exists (made now, or by an earlier attempt of this step)."""
        meta = manifest["metadata"]
        try:
            batch.create_namespaced_job(meta["namespace"], cast(Any, manifest),
                                        _request_timeout=self._timeouts)  # fmt: skip
            return None
        except ApiException as err:
            if err.status == 409:
                return self._adopt(batch, meta)
            if err.status == 403:
                return (f"failed: forbidden to create Jobs in {meta['namespace']} (the "
                        "worker's Role needs batch jobs create, get: `runbook rbac`)")  # fmt: skip
            return f"failed: creating job {meta['name']}: {err.status} {status_message(err)}"
        except RETRYABLE_TRANSPORT as err:
            return f"failed: creating job {meta['name']}: Kubernetes API unreachable: {err}"

    def _adopt(self, batch: client.BatchV1Api, meta: JSONDict) -> str | None:
        """A retry of the same step finds its own Job; any other Job of that name is not ours."""
        try:
            found = read_json(batch.read_namespaced_job, meta["name"], meta["namespace"],
                              timeout=self._timeouts)  # fmt: skip
        except (ApiException, *RETRYABLE_TRANSPORT) as err:
            return f"failed: job {meta['name']} exists and cannot be read: {err}"
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(KEY_LABEL) != meta["labels"][KEY_LABEL]:
            return f"failed: a job named {meta['name']} exists and was not made by this step"
        return None
