"""plan_for: the runbook path per scenario, and the policy's approval rules on each step."""

from __future__ import annotations

from activities.policy import ApprovalPolicy, Limits, Policy
from contracts.diagnosis import Scenario
from contracts.steps import StepName
from tests.workflows.test_classify import MB, diag
from workflows.runbook.plan import plan_for

POLICY = Policy()
SNAPSHOTS_FAILING = diag(maxmemory_policy="noeviction", save="3600 1", rdb_last_bgsave_status="err")


def names(scenario: Scenario, **fields: object) -> list[str]:
    return [s.name.value for s in plan_for(scenario, diag(**fields), POLICY)]  # type: ignore[arg-type]


def test_default_approvals_follow_the_runbook() -> None:
    judged = [s for s in Scenario if s is not Scenario.UNREACHABLE_FROM_RUNBOOK]
    needs = {
        s.name
        for scenario in judged
        for s in plan_for(scenario, SNAPSHOTS_FAILING, POLICY)
        if s.requires_approval
    }
    assert needs == {
        StepName.FLUSH,
        StepName.FORCE_DELETE_POD,
        StepName.RAISE_MEMORY_LIMIT,
        StepName.SET_EVICTION_POLICY,
        StepName.TUNE_PERSISTENCE,
    }
    for scenario in judged:
        for step in plan_for(scenario, diag(), POLICY):
            if step.name in {StepName.RESTART, StepName.MEMORY_PURGE, StepName.RAISE_MAXCLIENTS}:
                assert not step.requires_approval
            assert step.approvals_needed == (1 if step.requires_approval else 0)


def test_every_destructive_step_is_flagged() -> None:
    steps = plan_for(Scenario.REDIS_DOWN, diag(False, ("connection_refused",)), POLICY)
    destructive = {s.name for s in steps if s.destructive}
    assert destructive == {StepName.RESTART, StepName.FORCE_DELETE_POD, StepName.ENABLE_FALLBACK}


def test_out_of_memory_sets_an_evicting_policy_only_when_missing() -> None:
    assert "set_eviction_policy" in names(Scenario.OUT_OF_MEMORY, maxmemory_policy="noeviction")
    assert "set_eviction_policy" not in names(
        Scenario.OUT_OF_MEMORY, maxmemory_policy="allkeys-lru"
    )


def test_eviction_policy_is_volatile_only_when_nearly_all_keys_expire() -> None:
    def chosen(keys: int, expires: int) -> object:
        d = diag(maxmemory_policy="noeviction", keys=keys, expires=expires)
        return plan_for(Scenario.OUT_OF_MEMORY, d, POLICY)[1].params["policy"]

    assert chosen(100, 95) == "volatile-lru"
    assert chosen(100, 50) == "allkeys-lru"
    assert chosen(0, 0) == "allkeys-lru"


def test_maxclients_raised_to_the_ceiling_never_lowered() -> None:
    policy = Policy(limits=Limits(maxclients_ceiling=5000))
    plan = plan_for(Scenario.TOO_MANY_CONNECTIONS, diag(maxclients=1000), policy)
    assert plan[1].name is StepName.RAISE_MAXCLIENTS and plan[1].params == {"maxclients": 5000}
    at_ceiling = plan_for(Scenario.TOO_MANY_CONNECTIONS, diag(maxclients=5000), policy)
    assert StepName.RAISE_MAXCLIENTS not in [s.name for s in at_ceiling]


def test_high_latency_purges_only_fragmented_memory() -> None:
    assert "memory_purge" not in names(Scenario.HIGH_LATENCY, mem_fragmentation_ratio=1.1)
    assert "memory_purge" in names(Scenario.HIGH_LATENCY, mem_fragmentation_ratio=2.0)


def test_redis_down_that_is_loading_waits_first() -> None:
    plan = names(Scenario.REDIS_DOWN, reachable=False, findings=("loading",))
    assert plan[:3] == ["diagnose", "ping", "wait_ready"]


def test_auth_failure_plans_no_restart() -> None:
    plan = names(Scenario.REDIS_DOWN, reachable=False, findings=("auth_failed",))
    assert plan == ["diagnose", "ping", "diagnose"]


def test_policy_can_demand_more_approvals_and_more_steps() -> None:
    policy = Policy(
        approvals=ApprovalPolicy(
            required_for=[StepName.FLUSH, StepName.RESTART],
            approvals_needed={StepName.FLUSH: 2},
        )
    )
    down = plan_for(Scenario.REDIS_DOWN, diag(False, ("connection_refused",)), policy)
    assert next(s for s in down if s.name is StepName.RESTART).requires_approval
    oom = plan_for(Scenario.OUT_OF_MEMORY, diag(used_memory=99 * MB), policy)
    assert next(s for s in oom if s.name is StepName.FLUSH).approvals_needed == 2


def test_healthy_plans_only_the_diagnosis() -> None:
    assert names(Scenario.HEALTHY) == ["diagnose"]


def test_a_restart_only_the_runbook_asks_for_waits_for_a_person() -> None:
    """Down as the worker alone sees it (Kubernetes calls Redis Ready, or there is no second
    vantage point at all): the restart is planned behind an approval, never unattended."""
    cut_off = plan_for(Scenario.UNREACHABLE_FROM_RUNBOOK, diag(), POLICY)
    assert [s.name for s in cut_off if s.requires_approval] == [StepName.RESTART]
    assert "Kubernetes calls it Ready" in cut_off[1].title
    down = diag(False, ("connection_refused",))
    alone = plan_for(Scenario.REDIS_DOWN, down, POLICY, corroborated=False)
    seen = plan_for(Scenario.REDIS_DOWN, down, POLICY, corroborated=True)
    assert [s.requires_approval for s in alone if s.name is StepName.RESTART] == [True]
    assert [s.requires_approval for s in seen if s.name is StepName.RESTART] == [False]
    for code in ("tls_error", "dns_failure", "auth_failed"):
        worker_side = plan_for(Scenario.REDIS_DOWN, diag(False, (code,)), POLICY)
        assert StepName.RESTART not in [s.name for s in worker_side]
        assert StepName.PING in [s.name for s in worker_side]


def test_the_memory_limit_is_raised_under_the_policy_ceiling() -> None:
    from contracts.kubernetes import KubernetesFacts

    def oom_with_limit(mib: int) -> list[object]:
        facts = KubernetesFacts(taken_at=diag().taken_at, reachable=True, oom_killed=True,
                                memory_limit_bytes=mib * MB)  # fmt: skip
        d = diag(used_memory=95 * MB, maxmemory_policy="noeviction")
        step = next(
            s
            for s in plan_for(
                Scenario.OUT_OF_MEMORY, d.model_copy(update={"kubernetes": facts}), POLICY
            )
            if s.name is StepName.RAISE_MEMORY_LIMIT
        )
        return [step.params, step.title]

    assert oom_with_limit(1024)[0] == {"limit": "1536Mi"}
    assert oom_with_limit(12 * 1024)[0] == {"limit": "16384Mi"}  # capped at 16Gi
    params, title = oom_with_limit(16 * 1024)
    assert params == {"ceiling": "16384Mi"} and "ceiling" in str(title)
