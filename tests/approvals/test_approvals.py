"""The approval rules, without a server: allow-list, four eyes, N approvals, one decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.policy import ApprovalPolicy
from contracts.decisions import Decision
from contracts.steps import Step, StepName
from workflows.runbook.approvals import ApprovalBook, plan_digest

AT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PLAN = [
    Step(name=StepName.DIAGNOSE, title="d"),
    Step(name=StepName.FLUSH, title="f", requires_approval=True, approvals_needed=2),
    Step(name=StepName.TUNE_PERSISTENCE, title="t", requires_approval=True, approvals_needed=1),
]


def book(**policy: object) -> ApprovalBook:
    return ApprovalBook.for_plan(ApprovalPolicy(**policy), "alice", PLAN)


def decide(step: StepName, who: str, decision: str = "approve") -> Decision:
    return Decision(step=step, approver=who, decision=decision)


def test_n_approvals_from_different_people() -> None:
    b = book()
    assert b.submit(decide(StepName.FLUSH, "bob"), AT).accepted
    assert b.state(StepName.FLUSH) == "waiting"
    again = b.submit(decide(StepName.FLUSH, "bob"), AT)
    assert not again.accepted and "different person" in again.reason
    assert b.submit(decide(StepName.FLUSH, "carol"), AT).accepted
    assert b.state(StepName.FLUSH) == "approved"
    assert b.approvers_of(StepName.FLUSH) == ["bob", "carol"]


def test_allow_list_and_four_eyes() -> None:
    b = book(approvers=["bob", "alice"], four_eyes=True)
    stranger = b.submit(decide(StepName.TUNE_PERSISTENCE, "mallory"), AT)
    assert not stranger.accepted and "not an approver" in stranger.reason
    own = b.submit(decide(StepName.TUNE_PERSISTENCE, "alice"), AT)
    assert not own.accepted and "four eyes" in own.reason
    assert b.state(StepName.TUNE_PERSISTENCE) == "waiting"
    assert b.approvals == []
    assert b.submit(decide(StepName.TUNE_PERSISTENCE, "bob"), AT).accepted


def test_one_decision_per_step() -> None:
    b = book()
    assert b.submit(decide(StepName.TUNE_PERSISTENCE, "bob", "reject"), AT).accepted
    assert b.state(StepName.TUNE_PERSISTENCE) == "rejected"
    late = b.submit(decide(StepName.TUNE_PERSISTENCE, "carol"), AT)
    assert not late.accepted and "already decided: rejected" in late.reason


def test_steps_without_approval_and_expiry() -> None:
    b = book()
    assert not b.submit(decide(StepName.DIAGNOSE, "bob"), AT).accepted
    assert not b.submit(decide(StepName.RESTART, "bob"), AT).accepted
    b.expire(StepName.FLUSH)
    assert b.state(StepName.FLUSH) == "expired"
    assert not b.submit(decide(StepName.FLUSH, "bob"), AT).accepted


def test_four_eyes_still_lets_the_requester_reject() -> None:
    b = book(four_eyes=True)
    assert b.submit(decide(StepName.FLUSH, "alice", "reject"), AT).accepted
    assert b.state(StepName.FLUSH) == "rejected"


def test_a_step_the_book_was_never_told_about_is_not_approved() -> None:
    """Fail closed: a step outside the plan the book was made for needs the most approvals
    any step needs, and is 'waiting' (never 'approved') until it gets them."""
    b = book(approvals_needed={StepName.FLUSH: 3})
    assert b.state(StepName.RESTART) == "waiting"
    assert b.need(StepName.RESTART) == 3
    empty = ApprovalBook.for_plan(ApprovalPolicy(required_for=[]), "alice", [])
    assert empty.state(StepName.FLUSH) == "waiting"
    assert empty.need(StepName.FLUSH) == 1


def test_a_step_the_plan_gained_can_be_approved_once_required() -> None:
    b = book()
    refused = b.submit(decide(StepName.FORCE_DELETE_POD, "bob"), AT)
    assert not refused.accepted
    b.require(StepName.FORCE_DELETE_POD, 1)
    assert b.submit(decide(StepName.FORCE_DELETE_POD, "bob"), AT).accepted
    assert b.state(StepName.FORCE_DELETE_POD) == "approved"


def test_a_verified_only_step_refuses_a_typed_name_and_takes_a_proven_one() -> None:
    b = book(verified_only=[StepName.TUNE_PERSISTENCE])
    typed = b.submit(decide(StepName.TUNE_PERSISTENCE, "bob"), AT)
    assert not typed.accepted and "takes only a verified approval" in typed.reason
    assert b.state(StepName.TUNE_PERSISTENCE) == "waiting"
    proven = decide(StepName.TUNE_PERSISTENCE, "bob").model_copy(update={"proof": "oidc"})
    assert b.submit(proven, AT).accepted
    assert [(a.approver, a.proof) for a in b.approvals] == [("bob", "oidc")]
    assert b.state(StepName.TUNE_PERSISTENCE) == "approved"


def test_pre_approvals_past_their_expiry_stop_counting_and_the_step_waits_again() -> None:
    b = book()
    b.submit(decide(StepName.TUNE_PERSISTENCE, "bob"), AT)
    assert b.state(StepName.TUNE_PERSISTENCE) == "approved"
    assert b.expire_preapprovals(StepName.TUNE_PERSISTENCE, AT) == []  # not older than the cutoff
    later = AT + timedelta(minutes=16)
    [stale] = b.expire_preapprovals(StepName.TUNE_PERSISTENCE, later - timedelta(minutes=15))
    assert stale.approver == "bob" and stale.expired
    assert b.state(StepName.TUNE_PERSISTENCE) == "waiting"
    assert b.submit(decide(StepName.TUNE_PERSISTENCE, "bob"), later).accepted  # bob again
    assert b.state(StepName.TUNE_PERSISTENCE) == "approved"


def test_a_rejection_given_early_still_stands() -> None:
    b = book()
    b.submit(decide(StepName.FLUSH, "bob", "reject"), AT)
    b.expire_preapprovals(StepName.FLUSH, AT + timedelta(hours=1))
    assert b.state(StepName.FLUSH) == "rejected"


def test_the_plan_digest_follows_what_a_person_was_shown_not_progress() -> None:
    shown = plan_digest(PLAN)
    progressed = [s.model_copy(update={"status": "succeeded"}) for s in PLAN]
    assert plan_digest(progressed) == shown
    grown = [*PLAN, Step(name=StepName.ENABLE_FALLBACK, title="fall back")]
    assert plan_digest(grown) != shown
    retuned = [PLAN[0], PLAN[1], PLAN[2].model_copy(update={"params": {"save": ""}})]
    assert plan_digest(retuned) != shown
