"""The worker's configuration: `runbook.yaml` (path from RUNBOOK_CONFIG) under environment
overrides. A broken file must stop the process at start with the file, the field and the fix,
never half-start a worker that fails at 3 a.m. on the first incident.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from activities.notifications.models import Channel
from activities.policy import (
    Duration,
    Policy,
    Thresholds,
)
from activities.targets import (
    ConfiguredTarget,
    RedisAccess,
    SentinelGroup,
    TargetBook,
    Workload,
    identity,
)
from activities.warming.models import ArmedWarmer, Warmer
from contracts.base import K8sName
from contracts.target import RedisTarget
from worker.settings.webhook import WebhookSettings

DEFAULT_CONFIG = Path("runbook.yaml")
MIN_SIGNING_KEY = 32
SECRET_FIELDS = (
    "approval_signing_key",
    "redis_password",
    "webhook_token",
    "webhook_basic_password",
    "grafana_secret",
    "pagerduty_secrets",
    "slack_signing_secret",
    "codec_server_token",
)


class ConfigError(Exception):
    """A configuration problem, worded for the person who has to fix it."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodecSettings(Section):
    """Encrypted payloads (worker/payloads/codec.py): key id -> key file; `active` seals."""

    keys: dict[str, Path] = Field(default_factory=dict)
    active: str | None = None

    @model_validator(mode="after")
    def _active_is_a_key(self) -> CodecSettings:
        if self.active is not None and self.active not in self.keys:
            raise ValueError(f"temporal.codec.active {self.active!r} is not in temporal.codec.keys")
        if self.keys and self.active is None:
            raise ValueError("temporal.codec: name the key that seals new payloads in `active`")
        return self


class TemporalSettings(Section):
    """The connection comes the Temporal way first (temporalio.envconfig: the profile file the
    `temporal` CLI uses and TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
    TEMPORAL_TLS_*); `address` and `namespace` set here win over it."""

    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "runbooks"
    profile: str | None = Field(default=None, description="the profile to load (default: default)")
    config_file: Path | None = Field(
        default=None, description="the profile file (default: TEMPORAL_CONFIG_FILE or the CLI's)"
    )
    codec: CodecSettings = Field(
        default_factory=CodecSettings,
        description="encrypt every payload (history, signals, results) with these keys",
    )


class MetricsSettings(Section):
    """The worker's Prometheus endpoint: Temporal's SDK metrics and the runbook's own."""

    address: str | None = Field(
        default=None,
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="host:port to serve /metrics on (e.g. 127.0.0.1:9464); unset, none",
    )


class RedisSettings(Section):
    username: str | None = None
    tls_ca_file: Path | None = None
    connect_timeout: Duration = Field(default_factory=lambda: Thresholds().connect_timeout)
    command_timeout: Duration = Field(default_factory=lambda: Thresholds().connect_timeout * 2)


class KubernetesSettings(Section):
    """Where the worker's Kubernetes credentials come from: this kubeconfig, else in-cluster,
    else KUBECONFIG or ~/.kube/config. `enabled: false` keeps a worker Redis-only."""

    enabled: bool = True
    kubeconfig: Path | None = None
    context: str | None = None
    token_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        description="in-cluster: the service account's token (re-read as it rotates)",
    )
    ca_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        description="in-cluster: the CA the API server's certificate is checked against",
    )
    connect_timeout: Duration = Field(
        default=timedelta(seconds=3), description="per API call; keep both under 10s in sum"
    )
    request_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="per API call: wait_ready's heartbeat timeout is 10s, so a slower read "
        "would lose the attempt instead of looking again",
    )


class NotificationSettings(Section):
    channels: list[Channel] = Field(
        default_factory=lambda: [Channel(name="log", kind="log")],
        description="where status updates, escalations and approval requests go",
    )


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def unique_warmers(warmers: list[Warmer], where: str) -> None:
    names = [w.name for w in warmers]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{where}: two warmers are named {twice[0]!r}")


class RedisTls(Section):
    """A target's own TLS: the CA its server certificate is checked against, and the client
    certificate and key it demands (`tls-auth-clients yes`). Needs a rediss:// URL."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> RedisTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: cert_file and key_file go together")
        return self

    def check(self, target: str) -> None:
        """At the worker's start: every file it names can be read."""
        for path in (self.ca_file, self.cert_file, self.key_file):
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"target {target}: tls: cannot read {path}")


class SentinelRoute(Section):
    """A target whose master Sentinel chooses: the Sentinels (host:port), the name they
    monitor it by, their own password (an env var, read at start), and optionally the
    Service the application reaches the master through."""

    master_name: str = Field(min_length=1)
    addresses: list[str] = Field(min_length=1)
    password_env: str | None = Field(default=None, pattern=ENV_NAME)
    master_service: K8sName | None = None
    lag_threshold_s: float = Field(default=1.0, gt=0)

    @field_validator("addresses")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"sentinel address {entry!r} is not host:port")
        return value

    def group(self, target: str, secrets: bool = True) -> SentinelGroup:
        password = None
        if secrets and self.password_env:
            value = os.environ.get(self.password_env)
            if not value:
                raise ValueError(
                    f"target {target}: sentinel.password_env {self.password_env} is not set. "
                    "Fix: set it in the worker's environment"
                )
            password = SecretStr(value)
        return SentinelGroup(
            master_name=self.master_name,
            addresses=tuple(
                (a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in self.addresses
            ),
            password=password,
            master_service=self.master_service,
            lag_threshold_s=self.lag_threshold_s,
        )


class TargetRoute(Section):
    """A Redis this worker may act on, and the alert labels that name it (every matcher a
    fully anchored regex). The worker acts on nothing else: an incident for any other target
    is refused before the first connection. Its password comes from `password_env` or
    `password_file`; with a single target, RUNBOOK_REDIS_PASSWORD serves as the default."""

    name: str = Field(min_length=1)
    match: dict[str, str] = Field(default_factory=dict)
    redis_url: str
    namespace: K8sName = "default"
    statefulset: K8sName = "redis"
    api_deployment: K8sName | None = None
    pods: int = Field(
        default=1, ge=1, le=100, description="the StatefulSet's pods (<statefulset>-0 ...)"
    )
    username: str | None = Field(default=None, description="ACL user; default redis.username")
    password_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="environment variable holding its password"
    )
    password_file: Path | None = Field(default=None, description="file holding its password")
    workload: Workload = Field(
        default_factory=Workload,
        description="container names and the API's cache switch (env var, on and off values)",
    )
    tls: RedisTls | None = Field(
        default=None, description="this target's CA and client certificate (else redis.tls_ca_file)"
    )
    warmers: list[Warmer] | None = Field(
        default=None,
        description="what warms this target's cache after a flush or an outage; unset, the "
        "top-level warmers (an empty list: none)",
    )
    sentinel: SentinelRoute | None = Field(
        default=None,
        description="a master with replicas under Sentinel: every command goes to the master "
        "the Sentinels name, never to redis_url's host (which names the group in the record)",
    )

    @field_validator("match")
    @classmethod
    def _compile(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"matcher {label}: {pattern!r} is not a regex: {err}") from None
        return value

    @model_validator(mode="after")
    def _check_target(self) -> TargetRoute:
        self.to_target()
        return self

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> TargetRoute:
        if self.tls is not None and not self.redis_url.startswith("rediss://"):
            raise ValueError(f"target {self.name}: tls is set but redis_url is not rediss://")
        return self

    @model_validator(mode="after")
    def _warmer_names(self) -> TargetRoute:
        unique_warmers(self.warmers or [], f"target {self.name}: warmers")
        return self

    @model_validator(mode="after")
    def _one_password_source(self) -> TargetRoute:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    @property
    def has_own_password(self) -> bool:
        return bool(self.password_env or self.password_file)

    def password(self) -> SecretStr | None:
        """This target's own secret, read now (at start: a missing one stops the worker)."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if not value:
                raise ValueError(
                    f"target {self.name}: password_env {self.password_env} is not set. Fix: "
                    "set it in the worker's environment"
                )
            return SecretStr(value)
        if self.password_file:
            try:
                return SecretStr(self.password_file.read_text().strip())
            except OSError as err:
                raise ValueError(
                    f"target {self.name}: password_file: cannot read {self.password_file}: "
                    f"{err.strerror}"
                ) from None
        return None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(re.fullmatch(p, labels.get(k, "")) for k, p in self.match.items())

    def to_target(self) -> RedisTarget:
        return RedisTarget(
            redis_url=self.redis_url,
            namespace=self.namespace,
            statefulset=self.statefulset,
            api_deployment=self.api_deployment,
        )


class _TemporalEnvironment(PydanticBaseSettingsSource):
    """TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, the names every Temporal tool already reads."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {
            key: os.environ[env]
            for env, key in (("TEMPORAL_ADDRESS", "address"), ("TEMPORAL_NAMESPACE", "namespace"))
            if os.environ.get(env)
        }
        return {"temporal": found} if found else {}


class CliSettings(BaseModel):
    """How `runbook approve` proves who you are: through the webhook's approvals endpoint with
    an ID token (RUNBOOK_ID_TOKEN, or what `token_command` prints)."""

    model_config = ConfigDict(extra="forbid")

    approvals_url: str | None = Field(
        default=None, description="the webhook's base URL; set, approve/reject go through it"
    )
    token_command: str | None = Field(
        default=None, description="prints an ID token, e.g. `gcloud auth print-identity-token`"
    )


class Settings(BaseSettings, Policy):
    """Values from the YAML file arrive as init arguments, the lowest priority source. The
    policy's sections (thresholds, approvals, limits, recovery, outage, communication) are
    Policy's own fields, inherited: declared once, in activities/policy.py."""

    model_config = SettingsConfigDict(
        env_prefix="RUNBOOK_", env_nested_delimiter="__", extra="forbid"
    )

    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    warmers: list[Warmer] = Field(
        default_factory=list, description="the warmers of every target that names none itself"
    )
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    targets: list[TargetRoute] = Field(default_factory=list)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    webhook_token: SecretStr | None = None
    webhook_token_file: Path | None = None
    webhook_basic_password: SecretStr | None = None
    webhook_basic_password_file: Path | None = None
    grafana_secret: SecretStr | None = None
    grafana_secret_file: Path | None = None
    pagerduty_secrets: SecretStr | None = Field(
        default=None, description="comma-separated: several are valid while a secret rotates"
    )
    pagerduty_secrets_file: Path | None = None
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Slack app's signing secret: POST /slack/actions checks it"
    )
    slack_signing_secret_file: Path | None = None
    approval_signing_key: SecretStr | None = Field(
        default=None,
        description="shared by the webhook (which signs what its front doors verified) and the "
        "worker (which checks it); without it no decision counts as verified",
    )
    approval_signing_key_file: Path | None = None
    codec_server_token: SecretStr | None = Field(
        default=None, description="the bearer token `runbook codec-server` asks for"
    )
    codec_server_token_file: Path | None = None
    cli: CliSettings = Field(default_factory=lambda: CliSettings())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, _TemporalEnvironment(settings_cls), init_settings)

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        for name in SECRET_FIELDS:
            path: Path | None = getattr(self, f"{name}_file")
            if path is None or getattr(self, name) is not None:
                continue
            try:
                setattr(self, name, SecretStr(path.read_text().strip()))
            except OSError as err:
                raise ValueError(f"{name}_file: cannot read {path}: {err.strerror}") from None
        return self

    @model_validator(mode="after")
    def _strong_signing_key(self) -> Settings:
        """HS256 wants a key at least as long as its hash (RFC 7518, 3.2)."""
        key = self.approval_signing_key
        if key is not None and len(key.get_secret_value()) < MIN_SIGNING_KEY:
            raise ValueError(
                f"approval_signing_key is {len(key.get_secret_value())} characters: give at "
                f"least {MIN_SIGNING_KEY} (e.g. `openssl rand -hex 32`)"
            )
        return self

    @model_validator(mode="after")
    def _check_paging(self) -> Settings:
        """An escalation level pages channels that exist and page; a paging channel that no
        level names would never be used."""
        paging = {c.name for c in self.notifications.channels if c.pages}
        named = {name for level in self.communication.escalation for name in level.page}
        if unknown := sorted(named - paging):
            raise ValueError(
                f"communication.escalation pages {unknown[0]!r}, which is not a pagerduty "
                "channel under notifications.channels"
            )
        if unused := sorted(paging - named):
            raise ValueError(
                f"notifications: the pagerduty channel {unused[0]!r} is paged by no "
                "escalation level: add it to a level's `page:`"
            )
        return self

    @model_validator(mode="after")
    def _check_targets(self) -> Settings:
        """Names and workflow ids are unique; a shared password never serves two hosts."""
        unique_warmers(self.warmers, "warmers")
        keys = {
            "name": [r.name for r in self.targets],
            "namespace/statefulset": [r.to_target().workflow_id for r in self.targets],
        }
        for what, values in keys.items():
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"targets: two targets share the {what} {twice[0]!r}")
        shared = [r.name for r in self.targets if not r.has_own_password]
        if self.redis_password is not None and len(self.targets) > 1 and shared:
            raise ValueError(
                "RUNBOOK_REDIS_PASSWORD is the default password of a single target only; with "
                f"several, give each its own password_env or password_file (missing: "
                f"{', '.join(shared)})"
            )
        return self

    def warmers_of(self, route: TargetRoute) -> list[Warmer]:
        return self.warmers if route.warmers is None else route.warmers

    def armed_warmers(self) -> dict[str, list[ArmedWarmer]]:
        """Each target's warmers with their secrets, read now (at start, like passwords)."""
        try:
            return {r.name: [w.armed() for w in self.warmers_of(r)] for r in self.targets}
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def target_book(self) -> TargetBook:
        """Every configured target with its own credentials, read now: the worker calls this
        at start, so a missing secret stops it there, not at 3 a.m. (the CLI and the webhook
        never need the secrets)."""
        try:
            return TargetBook([self._configured(route) for route in self.targets])
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def _configured(self, route: TargetRoute, secrets: bool = True) -> ConfiguredTarget:
        own = route.password() if secrets and route.has_own_password else None
        password = own if route.has_own_password else self.redis_password
        update: dict[str, Any] = {
            "password": password,
            "username": route.username or self.redis.username,
        }
        if route.tls is not None:
            if secrets:
                route.tls.check(route.name)
            tls = route.tls
            update.update(tls_ca_file=tls.ca_file or self.redis.tls_ca_file,
                          tls_cert_file=tls.cert_file, tls_key_file=tls.key_file)  # fmt: skip
        if route.sentinel is not None:
            update["sentinel"] = route.sentinel.group(route.name, secrets)
        access = self.redis_access.model_copy(update=update)
        return ConfiguredTarget(
            name=route.name, target=route.to_target(), access=access, workload=route.workload
        )

    @property
    def policy(self) -> Policy:
        return Policy.model_validate({name: getattr(self, name) for name in Policy.model_fields})

    @property
    def redis_access(self) -> RedisAccess:
        """Timeouts and TLS shared by every target, with the default password."""
        return RedisAccess(
            username=self.redis.username,
            password=self.redis_password,
            tls_ca_file=self.redis.tls_ca_file,
            connect_timeout=self.redis.connect_timeout,
            command_timeout=self.redis.command_timeout,
        )

    def target_with_url(self, redis_url: str | None) -> TargetRoute:
        found = [r for r in self.targets if r.redis_url == redis_url]
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(r.name for r in found)
            raise ConfigError(f"several targets have redis_url {redis_url} ({names}): use --target")
        known = ", ".join(f"{r.name} ({r.redis_url})" for r in self.targets) or "none configured"
        raise ConfigError(
            f"no target with redis_url {redis_url} in the config (known: {known}). Fix: use "
            "--target NAME, or add the target to `targets:` in runbook.yaml"
        )

    def route_for(self, target: RedisTarget) -> TargetRoute | None:
        """The configured target `target` names (URL, namespace, StatefulSet, API Deployment)."""
        wanted = identity(target)
        return next((r for r in self.targets if identity(r.to_target()) == wanted), None)

    def unknown_target(self, target: RedisTarget) -> str:
        return TargetBook([self._configured(r, secrets=False) for r in self.targets]).refusal(
            target
        )

    def target_named(self, name: str) -> TargetRoute:
        for route in self.targets:
            if route.name == name:
                return route
        known = ", ".join(r.name for r in self.targets) or "none configured"
        raise ConfigError(f"no target named {name!r} in the config (known: {known})")
