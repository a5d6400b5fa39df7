"""The strict base of input contracts, and the Kubernetes name type they share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

K8sName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]


class Contract(BaseModel):
    """Base for input contracts: a typo in a field name is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False)
