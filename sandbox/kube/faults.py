"""Faults of the sandbox cluster, injected through the emulated API itself.

A fault is an annotation on the StatefulSet (`sandbox.redis-runbook.io/fault: down`), so the
CLI, the tests and the demo share one mechanism and the controller sees it like any change:

- `down`: the Redis process is killed and stays gone until the pod is restarted or deleted.
- `crashloop`: Redis is killed and every start fails (CrashLoopBackOff); deleting the pod
  gracefully hangs in Terminating, so a rollout restart does not help: only a force delete
  (grace 0) or clearing the fault does.
- `oom`: the container is OOMKilled once (lastState OOMKilled, restartCount+1), then Redis
  is filled until it refuses writes.
- `full`: a batch job wrote keys without a TTL until Redis refused writes, then
  maxmemory-policy went to volatile-lru: the keys with a TTL (the catalog the API caches) are
  evicted first, and then writes are refused, since nothing left is evictable. Out of memory
  for real under an evicting policy, not a healthy LRU cache; `clear` removes the batch job's
  keys and puts back the policy of the ConfigMap's redis.conf.
- `connections`: the controller holds all client slots but two (too many connections).
- `slow`: commands that block the server (DEBUG SLEEP) land in SLOWLOG.
- `pvc-unbound`: the pod's PVC goes Pending and the pod cannot be scheduled.
- `cut-off`: a NetworkPolicy `redis-lockdown` isolates the Redis pods and admits nothing, in
  place of the policies that admitted the API, so the API's pods cannot reach a Redis that is
  itself healthy (the runbook, outside the pod network, still can). `clear` puts them back.

The Sentinel topology's (SandboxCluster(sentinel=True): three pods, three Sentinels, quorum 2):

- `master-down`: the current master's redis-server (the pod whose Redis says role:master) is
  SIGKILLed and stays down (terminated, exit 137) until its pod is deleted or the fault is
  cleared, as `down` does, but only that pod: the replicas stay up and the Sentinels fail
  over to one of them. The deleted pod comes back as a replica of the new master.
- `no-quorum`: two of the three Sentinels are stopped, then the master is killed as in
  `master-down`: the Sentinel left sees the master down but cannot reach quorum 2, so no
  failover happens by itself (a `SENTINEL FAILOVER` sent to it still forces one). `clear`
  starts the stopped Sentinels again, on the same ports from the same config files.
- `replica-cut-off`: the highest-ordinal replica is frozen (SIGSTOP): its replication link
  goes silent and the master's `INFO replication` shows its `lag=` growing. Deleting that pod,
  or `clear`, thaws it (SIGCONT first, so stopping it does not hang).

There, `oom` and `full` hit the master alone (a replica refuses writes); the others hit every
pod, as they do the single pod. Each pod's `redis-role` label is its Redis' role as it last
answered, so a master killed stays labelled master (and not Ready) until it answers again.

- `clear` (either topology): the annotation is removed and the controller undoes what it can.
"""

from __future__ import annotations

from enum import StrEnum

from kubernetes import client

from sandbox.manifests import FAULT_ANNOTATION


class Fault(StrEnum):
    DOWN = "down"
    CRASHLOOP = "crashloop"
    OOM = "oom"
    FULL = "full"
    CONNECTIONS = "connections"
    SLOW = "slow"
    PVC_UNBOUND = "pvc-unbound"
    CUT_OFF = "cut-off"
    MASTER_DOWN = "master-down"
    NO_QUORUM = "no-quorum"
    REPLICA_CUT_OFF = "replica-cut-off"
    CLEAR = "clear"


def set_fault(api: client.ApiClient, namespace: str, statefulset: str, fault: Fault) -> None:
    """Set (or, for `clear`, remove) the fault annotation with a JSON merge patch."""
    value = None if fault is Fault.CLEAR else fault.value
    client.AppsV1Api(api).patch_namespaced_stateful_set(
        statefulset,
        namespace,
        {"metadata": {"annotations": {FAULT_ANNOTATION: value}}},
        _content_type="application/merge-patch+json",
    )
