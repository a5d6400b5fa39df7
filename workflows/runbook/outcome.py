"""How an auto-mode incident ended, from what the fresh diagnosis shows and what went wrong."""

from __future__ import annotations

from contracts.diagnosis import Scenario
from contracts.incident import Outcome


def outcome_for(original: Scenario, verified: Scenario | None, problems: list[str]) -> Outcome:
    """resolved: a fresh diagnosis is healthy. mitigated: the original symptom is gone but
    another remains. escalated: the symptom remains, or a needed step was refused, timed out,
    failed or is not available, and a person has to take over."""
    if verified is Scenario.HEALTHY:
        return "resolved"
    if problems or verified is None or verified is original:
        return "escalated"
    return "mitigated"
