"""What the Kubernetes activities report: the facts triage classifies on, and what each step did.

Step results extend StepResult, so the generic step executor (result_type=StepResult) can run
them unchanged, while a caller asking for the specific type also gets the typed fields (for
example enable_fallback's `original_replicas`, needed later to scale back).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.finding import Finding
from contracts.steps import StepResult

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ORIGINAL_REPLICAS = "redis-runbook.io/original-replicas"
ORIGINAL_ENV = "redis-runbook.io/original-env"  # the fallback's env vars before it (JSON)
# What maintenance mode changed, as it was before (JSON), so ending it puts exactly that back.
MAINTENANCE_ENV = "redis-runbook.io/maintenance-original-env"
MAINTENANCE_SELECTOR = "redis-runbook.io/maintenance-original-selector"
MAINTENANCE_REPLICAS = "redis-runbook.io/maintenance-original-replicas"
# When the runbook restarted this StatefulSet (a JSON list of times, newest last): the
# per-target restart budget, kept on the object itself so it outlives any worker or incident.
RESTART_HISTORY = "redis-runbook.io/restarts"
RESTART_HISTORY_KEPT = 20
CACHE_ENV = "CACHE_ENABLED"


class KubeProblem(StrEnum):
    """The one thing most wrong with the Redis StatefulSet, most decisive first.

    oom_killed points to out_of_memory; crash_loop_back_off, pending_unbound_pvc, pending,
    terminating and not_ready point to redis_down (with this as the reason).
    """

    UNAVAILABLE = "kubernetes_unavailable"  # not configured, unreachable or forbidden
    STATEFULSET_MISSING = "statefulset_missing"
    PENDING_UNBOUND_PVC = "pending_unbound_pvc"
    OOM_KILLED = "oom_killed"
    CRASH_LOOP = "crash_loop_back_off"
    TERMINATING = "terminating"  # a pod stuck being deleted: force_delete_pod
    PENDING = "pending"
    NO_PODS = "no_pods"
    NOT_READY = "not_ready"
    ROLLOUT_IN_PROGRESS = "rollout_in_progress"
    NONE = "none"


class StatefulSetFacts(BaseModel):
    name: str
    replicas: int = Field(description="spec.replicas")
    current_pods: int = Field(0, description="status.replicas")
    ready_replicas: int = 0
    updated_replicas: int = 0
    current_replicas: int = 0
    current_revision: str | None = None
    update_revision: str | None = None
    generation: int = 0
    observed_generation: int | None = None
    restarted_at: str | None = Field(None, description="the rollout-restart stamp, if any")
    restarts: list[datetime] = Field(
        default_factory=list, description="when the runbook restarted it (newest last)"
    )
    service_name: str | None = None

    @property
    def rollout_complete(self) -> bool:
        """kubectl rollout status's test: the controller saw the latest spec, every replica
        runs the latest revision and is ready."""
        return (
            self.observed_generation is not None
            and self.observed_generation >= self.generation
            and self.ready_replicas == self.replicas
            and self.updated_replicas == self.replicas
            and self.current_revision == self.update_revision
        )


class PodFacts(BaseModel):
    name: str
    uid: str
    phase: str
    ready: bool
    restarts: int = Field(0, description="restartCount of the Redis container")
    state: str | None = Field(None, description="running, waiting or terminated")
    waiting_reason: str | None = None
    last_termination_reason: str | None = Field(None, description="e.g. OOMKilled, Error")
    last_termination_exit_code: int | None = None
    last_termination_at: datetime | None = Field(None, description="when it last terminated")
    terminating: bool = False
    unschedulable: str | None = Field(None, description="why the scheduler left it Pending")
    revision: str | None = None
    claims: list[str] = Field(default_factory=list)

    @property
    def oom_killed(self) -> bool:
        return self.last_termination_reason == "OOMKilled"


class EventFacts(BaseModel):
    object_kind: str | None
    object_name: str | None
    type: str | None
    reason: str | None
    message: str | None
    count: int = 1
    last_seen: datetime | None = None


class LogLine(BaseModel):
    """A line of a container's log worth a person's eyes, quoted as written."""

    source: str = Field(description="pod/container")
    kind: str = Field(description="oom, persistence, refused, timeout, readonly, ...")
    line: str
    count: int = Field(1, description="how many such lines the tail held; this is the latest")


class PvcFacts(BaseModel):
    name: str
    phase: str | None
    bound: bool


class DeploymentFacts(BaseModel):
    name: str
    replicas: int
    ready_replicas: int = 0
    cache_enabled: bool | None = Field(None, description=f"{CACHE_ENV} of the API container")
    original_replicas: int | None = Field(None, description="set while the fallback is on")
    pod_labels: dict[str, str] = Field(
        default_factory=dict, description="its pod template's labels (NetworkPolicy peers)"
    )


class KubernetesFacts(BaseModel):
    """Everything inspect_kubernetes saw. `reachable` False means `findings` say why."""

    taken_at: datetime
    reachable: bool
    findings: list[Finding] = Field(default_factory=list)
    problem: KubeProblem = KubeProblem.NONE
    statefulset: StatefulSetFacts | None = None
    pods: list[PodFacts] = Field(default_factory=list)
    events: list[EventFacts] = Field(default_factory=list)
    pvcs: list[PvcFacts] = Field(default_factory=list)
    container: str = "redis"
    memory_limit: str | None = None
    memory_limit_bytes: int | None = None
    ready_endpoints: int | None = Field(None, description="None: no Endpoints object")
    not_ready_endpoints: int | None = None
    members: dict[str, str] = Field(
        default_factory=dict, description='the Service\'s endpoints, "ip:port" -> pod'
    )
    api_deployment: DeploymentFacts | None = None
    oom_killed: bool = Field(False, description="a pod was OOMKilled within the OOM window")
    crash_looping: bool = False
    pvc_unbound: bool = False
    pod_pending: bool = False
    pod_terminating: bool = False
    configured: dict[str, str] | None = Field(
        None,
        description="maxmemory (bytes), policy, maxclients, appendonly, save as the ConfigMap "
        "and the container's args set them; None: no ConfigMap named or readable",
    )
    config_source: str | None = Field(None, description="which ConfigMap and key")
    log_lines: list[LogLine] = Field(
        default_factory=list, description="from the Redis pods' log and the API's (Redis lines)"
    )
    network_blocked_by: list[str] = Field(
        default_factory=list,
        description="NetworkPolicies that shut the API's pods out of Redis (certainly, not maybe)",
    )

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)


class RestartResult(StepResult):
    statefulset: str
    stamp: str
    restarted: bool = Field(description="False when the stamp was already applied (a retry)")
    previous_stamp: str | None = None


class ReadinessResult(StepResult):
    ready: bool
    reason: str
    waited_seconds: float
    ping_ok: bool | None = None
    statefulset: StatefulSetFacts | None = None


class ForceDeleteResult(StepResult):
    pod: str
    deleted: bool = Field(description="False when the pod was already gone or replaced")
    uid: str | None = None


class MemoryLimitResult(StepResult):
    container: str
    previous: str | None
    limit: str


class FallbackResult(StepResult):
    deployment: str
    original_replicas: int = Field(description="replicas before the first fallback; scale back")
    replicas: int


class ReEnableResult(StepResult):
    deployment: str
    original_replicas: int | None = Field(
        None, description="what enable_fallback remembered (None once re-enabled before)"
    )


class ScaleResult(StepResult):
    deployment: str
    previous: int
    replicas: int
