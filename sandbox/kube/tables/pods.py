"""A pod's row: READY, STATUS (a waiting or terminated reason, Terminating), RESTARTS with
how long ago, and the wide IP, node and readiness gates columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.kube.tables.format import (
    AGE,
    NAME,
    TERMINAL_PHASES,
    Column,
    JSONDict,
    Obj,
    _meta,
    _name,
    age,
    human_duration,
    parse_time,
)

# ---------------------------------------------------------------------- pods


@dataclass
class Restarts:
    """Restart count and the latest lastState.terminated.finishedAt of some containers."""

    count: int = 0
    last: datetime | None = None

    def add(self, status: Obj) -> None:
        self.count += int(status.get("restartCount") or 0)
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        finished = parse_time(terminated.get("finishedAt"))
        if finished is not None and (self.last is None or self.last < finished):
            self.last = finished

    def text(self, now: datetime) -> str:
        """`3`, or `3 (12s ago)` once a restarted container has a finish time."""
        if self.count and self.last is not None:
            return f"{self.count} ({human_duration((now - self.last).total_seconds())} ago)"
        return str(self.count)


@dataclass
class PodSummary:
    """What printPod works out before writing the cells."""

    reason: str
    total: int
    ready: int = 0
    restarts: Restarts = field(default_factory=Restarts)


def _sidecars(spec: Obj) -> set[str]:
    """Restartable init containers (restartPolicy Always) count as the pod's containers."""
    return {str(c.get("name")) for c in spec.get("initContainers") or []
            if c.get("restartPolicy") == "Always"}  # fmt: skip


def _condition_true(status: Obj, kind: str) -> bool:
    conditions = status.get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _terminated_reason(terminated: Obj, prefix: str = "") -> str:
    """A terminated container's reason, or Signal:N / ExitCode:N when it gave none."""
    if terminated.get("reason"):
        return f"{prefix}{terminated['reason']}"
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{int(terminated.get('exitCode') or 0)}"


def _init_containers(pod: Obj, summary: PodSummary, everyone: Restarts, sidecar: Restarts) -> bool:
    """printPod's walk over the init containers; True while the pod is still initializing
    (its Status then reads Init:reason or Init:i/n)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    sidecars = _sidecars(spec)
    for i, container in enumerate(status.get("initContainerStatuses") or []):
        everyone.add(container)
        restartable = container.get("name") in sidecars
        if restartable:
            sidecar.add(container)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if restartable and container.get("started"):
            summary.ready += 1 if container.get("ready") else 0
            continue
        if terminated is not None:
            summary.reason = _terminated_reason(terminated, "Init:")
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            summary.reason = f"Init:{waiting['reason']}"
        else:
            summary.reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        return True
    return False


def _app_containers(pod: Obj, summary: PodSummary, restarts: Restarts) -> None:
    """printPod's walk over the containers, last to first, so the first container with a
    waiting or terminated reason (CrashLoopBackOff, ContainerCreating, OOMKilled) names it."""
    status = pod.get("status") or {}
    running = False
    for container in reversed(status.get("containerStatuses") or []):
        restarts.add(container)
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            summary.reason = str(waiting["reason"])
        elif terminated is not None:
            summary.reason = _terminated_reason(terminated)
        elif container.get("ready") and state.get("running") is not None:
            running = True
            summary.ready += 1
    if summary.reason == "Completed" and running:
        summary.reason = "Running" if _condition_true(status, "Ready") else "NotReady"
    summary.restarts = restarts


def pod_summary(pod: Obj) -> PodSummary:
    """printPod's Ready, Status and Restarts, from the pod's phase, conditions and container
    statuses, in kube-apiserver's order of precedence."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, _meta(pod)
    phase = str(status.get("phase") or "")
    total = len(spec.get("containers") or []) + len(_sidecars(spec))
    summary = PodSummary(reason=str(status.get("reason") or phase), total=total)
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):  # fmt: skip
        summary.reason = "SchedulingGated"
    everyone, sidecar = Restarts(), Restarts()
    initializing = _init_containers(pod, summary, everyone, sidecar)
    summary.restarts = everyone
    if not initializing or _condition_true(status, "Initialized"):
        _app_containers(pod, summary, sidecar)
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        summary.reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in TERMINAL_PHASES:
        summary.reason = "Terminating"
    return summary


def _readiness_gates(pod: Obj) -> str:
    """How many of the pod's readiness gates are True, as `1/2`; <none> without gates."""
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = {
        c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []
    }
    met = sum(1 for gate in gates if conditions.get(gate.get("conditionType")) == "True")
    return f"{met}/{len(gates)}"


def _pod_ip(status: Obj) -> str:
    """status.podIPs[0], which kube-apiserver fills from status.podIP when only that is set."""
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return str(status.get("podIP") or (ips[0] if ips else "") or "<none>")


def pod_cells(pod: Obj, now: datetime) -> list[Any]:
    summary = pod_summary(pod)
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    return [
        _name(pod), f"{summary.ready}/{summary.total}", summary.reason, summary.restarts.text(now),
        age(pod, now), _pod_ip(status), spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>", _readiness_gates(pod),
    ]  # fmt: skip


def pod_conditions(pod: Obj) -> list[JSONDict]:
    """The row condition kube-apiserver gives a finished pod (Completed: Succeeded/Failed)."""
    phase = (pod.get("status") or {}).get("phase")
    message = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in message:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message[phase]}]


POD_COLUMNS = (
    NAME,
    Column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "The aggregate status of the containers in this pod."),
    Column("Restarts", "The number of times the containers in this pod have been restarted "
           "and when the last container in this pod has restarted."),
    AGE,
    Column("IP", "podIP address allocated to the pod. Routable at least within the cluster. "
           "Empty if not yet allocated.", priority=1),
    Column("Node", "NodeName indicates in which node this pod is scheduled. If empty, this pod "
           "is a candidate for scheduling by the scheduler defined in schedulerName. Once this "
           "field is set, the kubelet for this node becomes responsible for the lifecycle of "
           "this pod. This field should not be used to express a desire for the pod to be "
           "scheduled on a specific node. "
           "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
           priority=1),
    Column("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods "
           "on the node, but it cannot be scheduled right away as preemption victims receive "
           "their graceful termination periods. This field does not guarantee that the pod "
           "will be scheduled on this node. Scheduler may decide to place the pod elsewhere if "
           "other nodes become available sooner. Scheduler may also decide to give the "
           "resources on this node to a higher priority pod that is created after preemption. "
           "As a result, this field may be different than PodSpec.nodeName when the pod is "
           "scheduled.", priority=1),
    Column("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
           "readiness. A pod is ready when all its containers are ready AND all conditions "
           "specified in the readiness gates have status equal to \"True\" More info: "
           "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
           priority=1),
)  # fmt: skip


# ---------------------------------------------------------------------- workloads
