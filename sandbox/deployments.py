"""The sandbox's Deployment controller: the API's pods, kept to the Deployment's spec.

A Deployment owns pods through a ReplicaSet named for its pod template
(`treebeard-api-<hash>`); the sandbox keeps the name, the `pod-template-hash` label and the
owner reference a real cluster gives, but serves no ReplicaSet objects. A template change (the
fallback's `kubectl set env`, a rollout restart) replaces every pod at once; a scale adds or
removes pods. The pods run no process of their own: they are Running and Ready once created,
and their `api` container's log is the one sandbox.api_traffic writes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sandbox.kube.api import KubeAPI, now_iso

JSONDict = dict[str, Any]
HASH_LABEL = "pod-template-hash"
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what kube's name generator draws from
Notify = Callable[[Mapping[str, Any], str, str], Awaitable[None]]


def template_hash(template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(SUFFIX_ALPHABET[int(c, 16) % len(SUFFIX_ALPHABET)] for c in digest[:10])


def owned_by(pod: Mapping[str, Any], deploy: Mapping[str, Any]) -> bool:
    owners = pod["metadata"].get("ownerReferences") or []
    prefix = f"{deploy['metadata']['name']}-"
    return any(o.get("kind") == "ReplicaSet" and o["name"].startswith(prefix) for o in owners)


def first_container(pod: Mapping[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["name"])


def running_status(pod: Mapping[str, Any]) -> JSONDict:
    """A started pod's status: every container running and ready."""
    started = now_iso()
    statuses = [
        {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True,
         "started": True, "restartCount": 0, "state": {"running": {"startedAt": started}},
         "lastState": {}}
        for c in pod["spec"]["containers"]
    ]  # fmt: skip
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": started}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {"phase": "Running", "conditions": conditions, "containerStatuses": statuses,
            "qosClass": "Burstable", "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "startTime": started}  # fmt: skip


class DeploymentController:
    """Keeps each Deployment's pods and status; `started` hears of every pod it starts."""

    def __init__(self, api: KubeAPI, event: Notify, started: Callable[[JSONDict], None]) -> None:
        self.api = api
        self.event = event
        self.started = started

    async def reconcile(self, deploy: JSONDict) -> None:
        meta, spec = deploy["metadata"], deploy["spec"]
        wanted = int(spec.get("replicas", 1))
        revision = template_hash(spec["template"])
        pods = [p for p in await self.api.list_objects("pods", meta["namespace"])
                if owned_by(p, deploy)]  # fmt: skip
        live = []
        for pod in pods:
            old = pod["metadata"]["labels"].get(HASH_LABEL) != revision
            if old or pod["metadata"].get("deletionTimestamp"):
                await self.stop(pod)
            else:
                live.append(pod)
        if len(live) != wanted:
            way = "up" if len(live) < wanted else "down"
            await self.event(deploy, "ScalingReplicaSet", f"Scaled {way} replica set "
                             f"{meta['name']}-{revision} from {len(live)} to {wanted}")  # fmt: skip
        for extra in live[wanted:]:
            await self.stop(extra)
        for _ in range(wanted - len(live)):
            live.append(await self.create_pod(deploy, revision))
        await self.update_status(deploy, live[:wanted], revision)

    async def stop(self, pod: JSONDict) -> None:
        """What the kubelet does with a pod that has no process: remove it at once."""
        await self.event(
            pod, "Killing", f"Stopping container {pod['spec']['containers'][0]['name']}"
        )
        await self.api.remove("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])

    async def create_pod(self, deploy: JSONDict, revision: str) -> JSONDict:
        meta, template = deploy["metadata"], deploy["spec"]["template"]
        replica_set = f"{meta['name']}-{revision}"
        suffix = "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(5))
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
                 "uid": str(uuid.uuid5(uuid.UUID(meta["uid"]), revision)), "controller": True,
                 "blockOwnerDeletion": True}  # fmt: skip
        pod: JSONDict = {
            "metadata": {
                "name": f"{replica_set}-{suffix}",
                "namespace": meta["namespace"],
                "labels": {
                    **(template.get("metadata") or {}).get("labels", {}),
                    HASH_LABEL: revision,
                },
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [owner],
            },
            "spec": {**template["spec"], "nodeName": "sandbox"},
        }
        pod["status"] = running_status(pod)
        created = await self.api.create("pods", pod)
        await self.event(
            created, "Started", f"Started container {pod['spec']['containers'][0]['name']}"
        )
        self.started(created)
        return created

    async def update_status(self, deploy: JSONDict, pods: list[JSONDict], revision: str) -> None:
        meta, count = deploy["metadata"], len(pods)
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": count,
            "readyReplicas": count,
            "availableReplicas": count,
            "updatedReplicas": count,
        }
        progressed = f'ReplicaSet "{meta["name"]}-{revision}" has successfully progressed.'

        def change(obj: JSONDict) -> None:
            before = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
            conditions = [
                before.get("Available") or {"type": "Available", "status": "True",
                    "reason": "MinimumReplicasAvailable", "lastTransitionTime": now_iso(),
                    "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": progressed, "lastTransitionTime": (before.get("Progressing") or {})
                 .get("lastTransitionTime") or now_iso()},
            ]  # fmt: skip
            obj["status"] = {**status, "conditions": conditions}

        await self.api.mutate("deployments", meta["namespace"], meta["name"], change)
