"""How a failed activity reads in the timeline and the report."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError


def cause_of(err: ActivityError) -> str:
    """The application error's type and message (`CommandUnavailable: ...`) when there is one."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause or err)
