"""The Temporal worker: every workflow and activity of the runbook on one task queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.attestation import AttestationActivities
from activities.kubernetes.client import KubernetesAccess
from activities.kubernetes.steps import KubernetesActivities
from activities.notifications.channels import NotificationActivities
from activities.policy import PolicyActivities, RunbookConfig
from activities.redis.analysis import RedisAnalysisActivities
from activities.redis.diagnosis import RedisDiagnosisActivities
from activities.redis.failover import SentinelActivities
from activities.redis.hit_rate import HitRateActivities
from activities.redis.remediation import RedisRemediationActivities
from activities.targets import TargetBook
from activities.warming.activity import WarmingActivities
from activities.warming.job import JobWarmer
from worker.settings.runbook import Settings
from worker.target_guard import TargetGuard
from workflows.incident.steps import KUBERNETES_STEPS, REDIS_STEPS
from workflows.incident.workflow import RedisCacheFailure

log = logging.getLogger("runbook.worker")


def activities_for(settings: Settings, targets: TargetBook) -> Sequence[Any]:
    """Bind every activity to the worker's settings; secrets stay in this process."""
    diagnosis = RedisDiagnosisActivities(targets, settings.thresholds.ping_samples)
    analysis = RedisAnalysisActivities(targets, slow_ms=settings.thresholds.slowlog_ms)
    fix = RedisRemediationActivities(targets)
    channels = settings.notifications.channels
    kube = kubernetes_activities(settings, targets)
    available = REDIS_STEPS | (KUBERNETES_STEPS if kube and kube.configured else frozenset())
    config = RunbookConfig(
        policy=settings.policy,
        available_steps=sorted(available),
        channels=[c.name for c in channels if not c.pages],
        paging=[c.name for c in channels if c.pages],
    )
    return [
        diagnosis.diagnose_redis,
        analysis.slowlog_report,
        analysis.client_report,
        analysis.keyspace_report,
        fix.ping,
        fix.memory_purge,
        fix.flush,
        fix.set_eviction_policy,
        fix.raise_maxclients,
        fix.tune_persistence,
        PolicyActivities(config, targets).runbook_config,
        AttestationActivities(settings.approval_signing_key).verify_decision,
        NotificationActivities(channels).notify,
        WarmingActivities(targets, settings.armed_warmers(), job_warmer(settings, kube)).warm,
        HitRateActivities(targets).watch_hit_rate,
        SentinelActivities(targets).verify_writes,
        SentinelActivities(targets).sentinel_failover,
        *(kube.all() if kube else []),
    ]


def job_warmer(settings: Settings, kube: KubernetesActivities | None) -> JobWarmer:
    """Job warmers use the worker's own Kubernetes client (none: they fail, saying so)."""
    return JobWarmer(kube.api_client if kube else None, kubernetes_access(settings).timeouts)


def kubernetes_access(settings: Settings) -> KubernetesAccess:
    k = settings.kubernetes
    return KubernetesAccess(
        kubeconfig=k.kubeconfig,
        context=k.context,
        token_file=k.token_file,
        ca_file=k.ca_file,
        connect_timeout=k.connect_timeout,
        request_timeout=k.request_timeout,
    )


def kubernetes_activities(settings: Settings, targets: TargetBook) -> KubernetesActivities | None:
    """None when switched off; otherwise loaded now (a missing config is logged, not fatal)."""
    if not settings.kubernetes.enabled:
        return None
    kube = KubernetesActivities.from_access(
        kubernetes_access(settings), targets, settings.thresholds.oom_window
    )
    if not kube.configured:
        log.warning("Kubernetes steps are not available on this worker: no configuration found")
    return kube


# Client libraries the contracts' modules import: shared with the sandbox rather than
# re-imported into every workflow run (they are never called from workflow code).
PASSTHROUGH = ("redis", "kubernetes", "httpx", "urllib3")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox the worker runs workflows in (the replay test uses the same)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    """Raises ConfigError when a target's secret cannot be read."""
    targets = settings.target_book()
    return Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=[RedisCacheFailure],
        activities=activities_for(settings, targets),
        activity_executor=executor,
        workflow_runner=workflow_runner(),
        interceptors=[TargetGuard(targets)],
    )


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set, then finish in-flight activity attempts and exit."""
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="activity") as executor:
        worker = build_worker(client, settings, executor)
        if not settings.targets:
            log.warning("no targets configured: every incident will be refused (see targets:)")
        log.info(
            "worker polling task queue %r on %s (namespace %s)",
            settings.temporal.task_queue,
            settings.temporal.address,
            settings.temporal.namespace,
        )
        async with worker:
            await stop.wait()
