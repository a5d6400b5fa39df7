"""The incident's memory: every durable field once, what continue-as-new carries, and the
carried shapes earlier versions wrote (an incident mid-flight across an upgrade continues
from one of those)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.policy import Policy, RunbookConfig
from contracts.alerts import Alert
from contracts.decisions import Abort, Decision
from contracts.diagnosis import Diagnosis, Scenario
from contracts.steps import Step, StepName
from workflows.incident.alerts import AlertLedger
from workflows.incident.memory import IncidentMemory
from workflows.incident.payloads import Malformed, parse

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
RUN_ONLY = {
    "config", "incident", "legacy_judgement", "phase", "current", "pending", "inbox", "book",
    "answered", "previous", "outcome", "local_reads", "offers_maintenance",
}  # fmt: skip


def mid_incident() -> IncidentMemory:
    triage = Diagnosis(redis_url="redis://127.0.0.1:6379/0", taken_at=NOW, reachable=True)
    return IncidentMemory(
        from_run_id="run-1",
        started_at=NOW,
        scenario=Scenario.OUT_OF_MEMORY,
        plan=[
            Step(name=StepName.DIAGNOSE, title="d", status="succeeded"),
            Step(name=StepName.FLUSH, title="flush", requires_approval=True),
        ],
        next_step=1,
        triage=triage,
        ledger=AlertLedger.of([Alert(source="alertmanager", name="RedisOOM", fingerprint="a")]),
        pending_since={StepName.FLUSH: NOW},
        abort=Abort(by="alice", reason="drill"),
    )


def test_what_is_carried_is_every_field_but_those_of_one_run() -> None:
    memory = mid_incident()
    memory.phase, memory.answered = "executing", False
    memory.inbox.append(Decision(step=StepName.FLUSH, approver="bob"))
    memory.config = RunbookConfig(policy=Policy.model_validate({"approvals": {"timeout": "1m"}}))
    carried = memory.model_dump(mode="json")
    assert set(carried) == set(IncidentMemory.model_fields) - RUN_ONLY
    again = IncidentMemory.model_validate(carried)
    assert again.model_dump(mode="json") == carried
    assert again.phase == "triage" and again.answered is None and again.inbox == []
    assert again.config == RunbookConfig()  # the policy is read afresh, never carried


def test_the_shape_the_previous_version_carried_still_reads() -> None:
    """`config` was always written (null once it stopped being carried) and `alerts` beside
    the ledger."""
    carried: dict[str, Any] = mid_incident().model_dump(mode="json") | {
        "config": None,
        "alerts": [],
    }
    memory = IncidentMemory.model_validate(carried)
    assert memory.ledger.firing_names() == ["RedisOOM"]
    assert "config" not in memory.model_fields_set


def test_alerts_carried_as_a_list_before_the_ledger_become_the_ledger() -> None:
    alerts = [
        Alert(source="grafana", name="RedisDown", fingerprint="x").model_dump(mode="json"),
        Alert(source="grafana", name="RedisDown", fingerprint="y").model_dump(mode="json"),
    ]
    carried = mid_incident().model_dump(mode="json", exclude={"ledger"}) | {"alerts": alerts}
    memory = IncidentMemory.model_validate(carried)
    assert memory.ledger.summary().distinct == 2 and memory.ledger.summary().firing == 2


def test_an_old_history_brings_its_own_config() -> None:
    """Before the policy stopped being carried, a continued run took it from its input; old
    histories replay that way (carry.py), so the field is still read."""
    policy = Policy.model_validate({"approvals": {"required_for": []}})
    carried = mid_incident().model_dump(mode="json") | {
        "from_run_id": None,
        "config": RunbookConfig(policy=policy).model_dump(mode="json"),
    }
    memory = IncidentMemory.model_validate(carried)
    assert "config" in memory.model_fields_set
    assert memory.config.policy.approvals.required_for == []


def test_a_malformed_signal_payload_says_what_is_wrong_and_who_sent_it() -> None:
    parsed = parse(Decision, {"step": "nuke", "approver": "mallory"}, decision="approve")
    assert isinstance(parsed, Malformed)
    assert parsed.problems.startswith("step: Input should be")
    assert parsed.actor("approver") == "mallory"
    assert isinstance(parse(Abort, "not a mapping"), Malformed)
    assert parse(Abort, {"by": "alice"}) == Abort(by="alice")
