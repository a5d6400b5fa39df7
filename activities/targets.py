"""The Redis targets this worker was configured for, each with its own credentials.

A workflow's input can be written by anyone who can start a workflow, so a target in it is a
claim, not an instruction: every activity that touches a Redis or a Kubernetes object looks
the claim up here first, and only a configured target gets a connection, a credential or an
API call. One target's secret is never handed out for another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from temporalio.exceptions import ApplicationError

from contracts.target import RedisTarget

UNKNOWN_TARGET = "UnknownTarget"


class SentinelGroup(BaseModel):
    """How the worker finds a Sentinel-managed target's master: the Sentinels to ask and the
    name they monitor it by. Worker configuration only: a workflow cannot point the worker
    at other Sentinels, so it cannot choose which server a flush lands on."""

    model_config = ConfigDict(frozen=True)

    master_name: str = Field(min_length=1)
    addresses: tuple[tuple[str, int], ...] = Field(min_length=1)
    password: SecretStr | None = Field(default=None, description="the Sentinels' own")
    master_service: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="the Service clients reach the master through: after a failover its "
        "endpoints must point at the new master",
    )
    lag_threshold_s: float = Field(default=1.0, gt=0, description="a replica further behind lags")


class RedisAccess(BaseModel):
    """Credentials and timeouts the worker holds; never part of workflow input or history.
    With `sentinel`, every connection goes to the master the Sentinels name, never to the
    URL's host: a flush or a CONFIG SET cannot land on a replica."""

    model_config = ConfigDict(frozen=True)

    sentinel: SentinelGroup | None = None

    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = Field(default=None, description="client certificate (mTLS)")
    tls_key_file: Path | None = None
    connect_timeout: timedelta = timedelta(seconds=2)
    command_timeout: timedelta = timedelta(seconds=5)


ENV_VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"


K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def env_names(value: dict[str, str], field: str) -> dict[str, str]:
    bad = [name for name in value if not re.fullmatch(ENV_VAR, name)]
    if bad:
        raise ValueError(f"{field}: {bad[0]!r} is not an environment variable name")
    return value


class MaintenanceMode(BaseModel):
    """How the API goes into maintenance, the step the 30-minute escalation offers behind
    approval: `env` set on the API container (e.g. MAINTENANCE_MODE: 'true'), or a
    maintenance `deployment` scaled to `replicas` with the `service` the API's traffic comes
    through pointed at its pods (`selector`). Either is put back as it was at recovery."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: dict[str, str] = Field(default_factory=dict)
    deployment: str | None = Field(default=None, pattern=K8S_NAME)
    replicas: int = Field(default=1, ge=1, le=100)
    service: str | None = Field(default=None, pattern=K8S_NAME)
    selector: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return env_names(value, "maintenance.env")

    @model_validator(mode="after")
    def _one_way(self) -> MaintenanceMode:
        routed = self.deployment is not None or self.service is not None or bool(self.selector)
        if bool(self.env) == routed:
            raise ValueError(
                "maintenance: give env (set on the API), or deployment, service and selector "
                "(the maintenance pods the API's Service is pointed at), not both"
            )
        if routed and not (self.deployment and self.service and self.selector):
            raise ValueError("maintenance: deployment, service and selector go together")
        return self

    def describe(self) -> str:
        if self.env:
            return ", ".join(f"{k}={v}" for k, v in sorted(self.env.items())) + " on the API"
        return f"service {self.service} to deployment {self.deployment}"


class Workload(BaseModel):
    """How a target's Kubernetes objects are laid out: which container is Redis, which is the
    API, and the switch that turns the API's cache off and on again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_container: str = Field(default="redis", min_length=1)
    api_container: str = Field(default="api", min_length=1)
    cache_env: str = Field(default="CACHE_ENABLED", pattern=ENV_VAR)
    cache_on: str = "true"
    cache_off: str = "false"
    api_hpa: str | None = Field(
        default=None,
        pattern=K8S_NAME,
        description="the API's HorizontalPodAutoscaler: fallback raises its minReplicas",
    )
    fallback_env: dict[str, str] = Field(
        default_factory=dict,
        description="env vars set on the API container with the cache switch while it serves "
        "from the database (e.g. DB_READ_REPLICAS: 'true'), put back as they were after",
    )

    @field_validator("fallback_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return env_names(value, "fallback_env")

    config_map: str | None = Field(
        default=None,
        pattern=K8S_NAME,
        description="the ConfigMap Redis' config file comes from: triage compares it (with "
        "the container's args over it) with the live CONFIG",
    )
    config_key: str = Field(default="redis.conf", min_length=1, description="its file's key")
    maintenance: MaintenanceMode | None = Field(
        default=None,
        description="how the API goes into maintenance mode (offered at 30 minutes); unset, "
        "it is never offered",
    )

    @model_validator(mode="after")
    def _maintenance_apart(self) -> Workload:
        """Maintenance puts its env back as it found it: sharing a name with the cache switch
        or the fallback would undo re_enable's work (the cache left off after recovery)."""
        mode = self.maintenance
        shared = sorted(set(mode.env) & {self.cache_env, *self.fallback_env}) if mode else []
        if shared:
            raise ValueError(
                f"maintenance.env: {shared[0]} is also set by the fallback (cache_env or "
                "fallback_env): give maintenance mode its own env var"
            )
        return self

    read_api_logs: bool = Field(
        default=True,
        description="triage quotes the Redis lines of the API pods' log; their names are "
        "generated, so the Role's pods/log rule cannot name them: false keeps it to Redis' pods",
    )


class ConfiguredTarget(BaseModel):
    """One entry of the worker's `targets:`, secrets resolved (never serialised to a workflow)."""

    model_config = ConfigDict(frozen=True)

    name: str
    target: RedisTarget
    access: RedisAccess = RedisAccess()
    workload: Workload = Workload()


def identity(target: RedisTarget) -> tuple[str, str, str, str | None]:
    """What names a target: the Redis it connects to and the Kubernetes objects it may touch."""
    return (target.redis_url, target.namespace, target.statefulset, target.api_deployment)


class TargetBook:
    """Looks targets up by identity; anything not configured is refused, never guessed."""

    def __init__(self, targets: Sequence[ConfiguredTarget]) -> None:
        self._by_identity = {identity(t.target): t for t in targets}

    @property
    def configured(self) -> list[ConfiguredTarget]:
        return list(self._by_identity.values())

    def find(self, target: RedisTarget) -> ConfiguredTarget:
        """The configured entry for `target`, or a non-retryable UnknownTarget error."""
        found = self._by_identity.get(identity(target))
        if found is None:
            raise ApplicationError(self.refusal(target), type=UNKNOWN_TARGET, non_retryable=True)
        return found

    def access(self, target: RedisTarget) -> RedisAccess:
        return self.find(target).access

    def workload(self, target: RedisTarget) -> Workload:
        """The target's layout; the defaults for one not configured (which the activity guard
        refuses before any step runs, so this is never what lets a call through)."""
        found = self._by_identity.get(identity(target))
        return found.workload if found is not None else Workload()

    def refusal(self, target: RedisTarget) -> str:
        known = "; ".join(
            f"{t.name} ({t.target.redis_url}, {t.target.namespace}/{t.target.statefulset}, "
            f"api {t.target.api_deployment or 'none'})"
            for t in self._by_identity.values()
        )
        return (
            f"target {target.redis_url} ({target.namespace}/{target.statefulset}, api "
            f"{target.api_deployment or 'none'}) is not one this worker is configured for: "
            f"nothing was contacted. Configured: {known or 'none'}. Fix: start the incident "
            "for a configured target (runbook start --target NAME), or add it to `targets:` "
            "in the worker's runbook.yaml"
        )
