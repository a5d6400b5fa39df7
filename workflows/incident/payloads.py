"""Signals cannot answer, so a malformed payload is recorded in the timeline rather than dropped
unseen: one parser for every signal that takes a free-form payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Malformed:
    problems: str
    fields: dict[str, Any]

    def actor(self, key: str) -> str:
        """Who the payload says sent it, for the timeline entry that refuses it."""
        return str(self.fields.get(key, "unknown"))


def parse(model: type[M], payload: Any, **extra: Any) -> M | Malformed:
    fields = payload if isinstance(payload, dict) else {}
    try:
        return model.model_validate({**fields, **extra})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return Malformed(problems, fields)
