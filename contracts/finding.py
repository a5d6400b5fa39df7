"""A finding: something a probe noticed. Failures to reach Redis are findings, not exceptions."""

from __future__ import annotations

from pydantic import BaseModel


class Finding(BaseModel):
    code: str
    message: str
