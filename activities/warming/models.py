"""A warmer as `runbook.yaml` gives it, and as the worker holds it once its secret is read."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from activities.targets import ENV_VAR

HEADER_NAME = r"^[A-Za-z0-9-]+$"


class Warmer(BaseModel):
    """`http`: POST url?critical_only=true|false with a JSON body naming the target, and the
    header `auth_header` set to the value of the environment variable `auth_env`; 2xx means
    done. `job`: a Kubernetes Job made from `job` (a batch/v1 Job manifest: the application's
    image running its warm script) in the target's namespace, run once per warm step; it is
    done when the Job completes. `callable`: "package.module:function", called as
    function(client: redis.Redis, critical_only: bool), returning how many keys it wrote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    kind: Literal["http", "callable", "job"]
    url: str | None = None
    auth_header: str = Field(default="Authorization", pattern=HEADER_NAME)
    auth_env: str | None = Field(
        default=None, pattern=ENV_VAR, description="environment variable with the header's value"
    )
    target: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    job: dict[str, Any] | None = Field(default=None, description="the Job manifest (kind: Job)")
    timeout_s: float = Field(default=120.0, gt=0)
    poll_s: float = Field(default=1.0, gt=0, le=60, description="how often a Job is looked at")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Warmer:
        needs = {"http": ("url", self.url), "callable": ("target", self.target),
                 "job": ("job", self.job)}  # fmt: skip
        field, value = needs[self.kind]
        if not value:
            article = "an" if self.kind == "http" else "a"
            raise ValueError(f"warmer {self.name!r}: {article} {self.kind} warmer needs {field}")
        if self.auth_env and self.kind != "http":
            raise ValueError(f"warmer {self.name!r}: auth_env is for http warmers only")
        if self.job is not None:
            job_problems(self.name, self.job)
        return self

    def armed(self) -> ArmedWarmer:
        """With its secret read now (at start: a missing one stops the worker)."""
        if not self.auth_env:
            return ArmedWarmer(warmer=self)
        value = os.environ.get(self.auth_env)
        if not value:
            raise ValueError(
                f"warmer {self.name}: auth_env {self.auth_env} is not set. Fix: set it in the "
                "worker's environment (the value is sent as the "
                f"{self.auth_header} header)"
            )
        return ArmedWarmer(warmer=self, auth=SecretStr(value))


def job_problems(name: str, job: dict[str, Any]) -> None:
    """What kube-apiserver would refuse, said at start instead of at the first warm."""
    if job.get("kind", "Job") != "Job" or job.get("apiVersion", "batch/v1") != "batch/v1":
        raise ValueError(f"warmer {name!r}: job must be a batch/v1 Job")
    template = (job.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers or not all(c.get("name") and c.get("image") for c in containers):
        raise ValueError(
            f"warmer {name!r}: job.spec.template.spec.containers needs at least one container "
            "with a name and an image"
        )
    if (template.get("spec") or {}).get("restartPolicy", "Never") not in ("Never", "OnFailure"):
        raise ValueError(f"warmer {name!r}: a Job's restartPolicy is Never or OnFailure")


class ArmedWarmer(BaseModel):
    """A warmer and the secret it sends (held by the worker, never in a workflow)."""

    model_config = ConfigDict(frozen=True)

    warmer: Warmer
    auth: SecretStr | None = None
