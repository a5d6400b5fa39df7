"""How a failed activity reads in the timeline and the report; and the request to hand over."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError


def cause_of(err: ActivityError) -> str:
    """The application error's type and message (`CommandUnavailable: ...`) when there is one."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause or err)


class ContinueAsNew(Exception):
    """Raised where a wait notices the history is too long; the run loop catches it and
    continues as new (carry.py), so handing over happens in one place."""
