"""A finding: something a probe noticed. Failures to reach Redis are findings, not exceptions."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Finding(BaseModel):
    code: str
    message: str
    subject: str | None = Field(
        default=None,
        description="what it is about, where that is not the target itself: a replica's address",
    )
