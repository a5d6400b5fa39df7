"""A Sentinel-managed group's rules and plans, as pure functions of the facts: a master down
is waited for or handed to a person, never restarted; a replica behind is resynchronised
behind approval; the master is never a step's subject."""

from __future__ import annotations

from pathlib import Path

from activities.policy import Policy
from activities.redis.group import group_findings, usable_master
from contracts.diagnosis import Diagnosis, Scenario
from contracts.finding import Finding
from contracts.kubernetes import KubernetesFacts, PodFacts
from contracts.replication import Member, ReplicationFacts, SentinelView
from contracts.steps import StepName
from tests.workflows.test_classify import NOW, diag
from worker.settings.loader import load_settings
from workflows.runbook.classify import explain
from workflows.runbook.plan import DESTRUCTIVE, plan_for

MASTER, R1, R2 = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"
PODS = {MASTER: "redis-0", R1: "redis-1", R2: "redis-2"}


def sentinel(up: bool = True, flags: str = "master", quorum_ok: bool = True) -> SentinelView:
    return SentinelView(
        address="10.0.1.1:26379",
        reachable=up,
        master=MASTER if up else None,
        flags=flags,
        quorum=2,
        quorum_ok=quorum_ok and up,
        quorum_message="OK 3 usable Sentinels" if quorum_ok else "NOQUORUM 1 usable Sentinels",
        down_after_ms=5000,
        failover_timeout_ms=10000,
    )


def replica(address: str, lag: int = 0, link: str = "up", up: bool = True) -> Member:
    return Member(address=address, reachable=up, role="slave", master_link_status=link, lag_s=lag)


def group(views: list[SentinelView], replicas: list[Member]) -> ReplicationFacts:
    master = Member(address=MASTER, named_master=True, reachable=True, role="master")
    return ReplicationFacts(master_name="mymaster", master=MASTER, sentinels=views,
                            members=[master, *replicas])  # fmt: skip


def judged(facts: ReplicationFacts) -> Diagnosis:
    """What diagnose_redis makes of the facts: the master read if usable, and the findings."""
    master = usable_master(facts)
    found = group_findings(facts, 1.0)
    kube = KubernetesFacts(taken_at=NOW, reachable=True, members=PODS)
    if isinstance(master, Finding):
        seen = diag(reachable=False)
        found = [master, *found]
    else:
        seen = diag()
    return seen.model_copy(update={"findings": found, "replication": facts, "kubernetes": kube})


def unanswered(ready: dict[str, bool]) -> Diagnosis:
    """The worker cannot reach the master the Sentinels see up; the pods as `ready` says."""
    pods = [PodFacts(name=n, uid=n, phase="Running", ready=r) for n, r in ready.items()]
    kube = KubernetesFacts(taken_at=NOW, reachable=True, members=PODS, pods=pods)
    facts = group([sentinel()] * 3, [replica(R1), replica(R2)])
    refused = [Finding(code="connection_refused", message="refused")]
    return diag(reachable=False).model_copy(
        update={"replication": facts, "kubernetes": kube, "findings": refused}
    )


def test_a_master_sentinel_flags_down_is_waited_for_and_never_restarted() -> None:
    d = judged(group([sentinel(flags="master,s_down,o_down")] * 3, [replica(R1), replica(R2)]))
    (scenario, reason), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.FAILOVER
    assert "redis-0 (10.0.0.1:6379)" in reason
    plan = plan_for(scenario, d, Policy())
    names = [s.name for s in plan]
    assert StepName.RESTART not in names and StepName.FORCE_DELETE_POD not in names
    assert names.index(StepName.WAIT_FAILOVER) < names.index(StepName.RESTART_REPLICA)
    wait = next(s for s in plan if s.name is StepName.WAIT_FAILOVER)
    assert wait.params["timeout_s"] == 25  # down-after 5 s + twice failover-timeout 10 s


def test_without_quorum_the_failover_is_a_persons_call() -> None:
    views = [
        sentinel(flags="master,s_down", quorum_ok=False),
        sentinel(up=False),
        sentinel(up=False),
    ]
    d = judged(group(views, [replica(R1), replica(R2)]))
    (scenario, reason), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.NO_FAILOVER
    assert "cannot fail over" in reason
    first = plan_for(scenario, d, Policy())[1]
    assert first.name is StepName.SENTINEL_FAILOVER and first.requires_approval
    assert first.destructive


def test_a_lagging_replica_is_resynced_behind_approval_and_the_master_is_never_named() -> None:
    d = judged(group([sentinel()] * 3, [replica(R1), replica(R2, lag=7)]))
    (scenario, reason), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.REPLICA_DEGRADED
    assert "redis-2 (10.0.0.3:6379) lags 7 s behind the master" in reason
    acting = [s for s in plan_for(scenario, d, Policy()) if s.name is not StepName.DIAGNOSE]
    assert [s.name for s in acting] == [StepName.RESTART_REPLICA]
    assert acting[0].params == {"address": R2} and acting[0].requires_approval
    assert all(MASTER not in str(s.params) for s in acting)


def test_a_dead_replica_rejoins_without_approval_and_a_healthy_group_is_healthy() -> None:
    d = judged(group([sentinel()] * 3, [replica(R1, up=False), replica(R2)]))
    step = next(s for s in plan_for(Scenario.REPLICA_DEGRADED, d, Policy()) if s.params)
    assert step.name is StepName.RESTART_REPLICA and not step.requires_approval
    assert StepName.RESTART_REPLICA in DESTRUCTIVE
    assert (
        explain(judged(group([sentinel()] * 3, [replica(R1), replica(R2)])), Policy().thresholds)
        == []
    )


def test_the_worker_alone_not_reaching_a_master_sentinel_sees_up_restarts_nothing() -> None:
    facts = group([sentinel()] * 3, [replica(R1), replica(R2)])
    d = diag(reachable=False).model_copy(
        update={"replication": facts, "findings": [Finding(code="timeout", message="timed out")]}
    )
    (scenario, reason), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.UNREACHABLE_FROM_RUNBOOK
    assert "3 Sentinels see it up" in reason
    assert {s.name for s in plan_for(scenario, d, Policy())} == {StepName.DIAGNOSE}


def test_before_down_after_a_master_kubernetes_calls_down_is_waited_for_too() -> None:
    """Sentinel flags a master only after down-after: the incident can open first. With
    Kubernetes agreeing it is down, the plan still waits for Sentinel and restarts nothing."""
    d = unanswered({"redis-0": False})
    (scenario, reason), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.FAILOVER
    assert "do not flag it yet (down-after 5 s)" in reason
    assert StepName.RESTART not in {s.name for s in plan_for(scenario, d, Policy())}


def test_sentinels_short_of_quorum_with_everything_serving_is_for_a_person() -> None:
    views = [sentinel(quorum_ok=False), sentinel(up=False), sentinel(up=False)]
    d = judged(group(views, [replica(R1), replica(R2)]))
    (scenario, reason), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.SENTINELS_DEGRADED
    assert "2 of 3 Sentinels do not answer" in reason and "would not fail over" in reason
    assert {s.name for s in plan_for(scenario, d, Policy())} == {StepName.DIAGNOSE}


def test_another_members_pod_down_does_not_corroborate_the_master_down() -> None:
    """After a failover the old master's pod is not Ready: that says nothing of the new one."""
    d = unanswered({"redis-0": True, "redis-1": False})
    (scenario, _), *_ = explain(d, Policy().thresholds)
    assert scenario is Scenario.UNREACHABLE_FROM_RUNBOOK


def test_the_shipped_policy_puts_a_forced_failover_behind_a_proven_person() -> None:
    """deploy/runbook.yaml lists its own required_for: a Sentinel step missing from it would
    run unattended there, whatever the defaults say."""
    shipped = load_settings(Path(__file__).resolve().parents[2] / "deploy" / "runbook.yaml")
    assert shipped.approvals.needed(StepName.SENTINEL_FAILOVER) == 1
    assert {StepName.SENTINEL_FAILOVER, StepName.RESTART_REPLICA} <= set(
        shipped.approvals.verified_only
    )
    views = [
        sentinel(flags="master,s_down", quorum_ok=False),
        sentinel(up=False),
        sentinel(up=False),
    ]
    d = judged(group(views, [replica(R1), replica(R2)]))
    forced = plan_for(Scenario.NO_FAILOVER, d, shipped.policy)[1]
    assert forced.name is StepName.SENTINEL_FAILOVER and forced.requires_approval
