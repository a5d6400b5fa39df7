"""What a step did: the common result every remediation activity returns."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StepResult(BaseModel):
    """What a step did, for the report: whether it changed anything, and the values around it."""

    changed: bool
    summary: str
    before: dict[str, str | int | float | None] = Field(default_factory=dict)
    after: dict[str, str | int | float | None] = Field(default_factory=dict)
