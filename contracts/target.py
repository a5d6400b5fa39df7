"""Which Redis an incident is about: the target every part of the project names."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from contracts.base import Contract, K8sName


class RedisTarget(Contract):
    """Which Redis an incident is about, and the Kubernetes objects around it."""

    redis_url: str = Field(description="redis:// or rediss:// URL, without a password")
    namespace: K8sName = "default"
    statefulset: K8sName = "redis"
    api_deployment: K8sName | None = None
    api_replicas: int | None = Field(default=None, ge=0, le=1000)
    fallback_replicas: int | None = Field(default=None, ge=0, le=1000)

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(
                f"scheme must be redis:// or rediss://, got {parts.scheme or 'none'!r} "
                "(example: redis://redis.treebeard-production.svc:6379/0)"
            )
        if not parts.hostname:
            raise ValueError("has no host (example: redis://127.0.0.1:6379/0)")
        if parts.password:
            raise ValueError(
                "must not carry a password: it would be stored in the workflow history; "
                "give it to the worker as RUNBOOK_REDIS_PASSWORD instead"
            )
        try:
            parts.port  # noqa: B018 - property raises on a bad port
        except ValueError as err:
            raise ValueError(f"has a bad port: {err}") from None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"database must be a number, got {path!r}")
        return value

    @property
    def db(self) -> int:
        path = urlsplit(self.redis_url).path.strip("/")
        return int(path) if path else 0

    @property
    def workflow_id(self) -> str:
        """One incident per target: alert storms for the same Redis land in one workflow."""
        return f"redis-cache-failure/{self.namespace}/{self.statefulset}"
