"""Who may deliver alerts: bearer token, basic auth, or the source's own HMAC signature.

Every comparison is constant-time (hmac.compare_digest) so a caller cannot learn a secret one
byte at a time from response timings. The request is authentic when any mechanism the config
allows for that source, and for which a secret is configured, accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from worker.settings.runbook import Settings
from worker.settings.webhook import AlertSource, AuthMechanism, WebhookSettings

PAGERDUTY_SIGNATURE_HEADER = "X-PagerDuty-Signature"


class AuthError(Exception):
    """Refused: the message says why, without echoing anything secret."""


@dataclass(frozen=True)
class Credentials:
    """The secrets the webhook checks against, read once from Settings."""

    token: bytes | None = None
    basic: bytes | None = None  # "user:password", compared as a whole
    grafana_secret: bytes | None = None
    pagerduty_secrets: tuple[bytes, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        def value(name: str) -> bytes | None:
            secret = getattr(settings, name)
            text = secret.get_secret_value().strip() if secret is not None else ""
            return text.encode() if text else None

        password = value("webhook_basic_password")
        rotated = value("pagerduty_secrets") or b""
        return cls(
            token=value("webhook_token"),
            basic=(settings.webhook.basic_username.encode() + b":" + password)
            if password
            else None,
            grafana_secret=value("grafana_secret"),
            pagerduty_secrets=tuple(s for s in re.split(rb"[\s,]+", rotated) if s),
        )

    def available(self, mechanism: AuthMechanism, source: AlertSource) -> bool:
        if mechanism is AuthMechanism.BEARER:
            return self.token is not None
        if mechanism is AuthMechanism.BASIC:
            return self.basic is not None
        if source is AlertSource.GRAFANA:
            return self.grafana_secret is not None
        if source is AlertSource.PAGERDUTY:
            return bool(self.pagerduty_secrets)
        return False

    @property
    def any(self) -> bool:
        return bool(self.token or self.basic or self.grafana_secret or self.pagerduty_secrets)


def _sign(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _same(given: str | bytes, expected: str | bytes) -> bool:
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


class Authenticator:
    """Checks one request against the mechanisms its source allows."""

    def __init__(
        self,
        credentials: Credentials,
        config: WebhookSettings,
        *,
        insecure_no_auth: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._config = config
        self._open = insecure_no_auth and not credentials.any
        self._clock = clock

    @property
    def open(self) -> bool:
        """True only when started with --insecure-no-auth and no credentials at all."""
        return self._open

    def usable(self, source: AlertSource) -> list[AuthMechanism]:
        return [
            m for m in self._config.mechanisms(source) if self._credentials.available(m, source)
        ]

    def check(self, source: AlertSource, headers: Mapping[str, str], body: bytes) -> str:
        """Return the mechanism that accepted the request, or raise AuthError."""
        if self._open:
            return "none"
        usable = self.usable(source)
        if not usable:
            raise AuthError(f"no credentials are configured for source {source.value}")
        problems: list[str] = []
        for mechanism in usable:
            try:
                if self._accepts(mechanism, source, headers, body):
                    return mechanism.value
            except AuthError as err:
                problems.append(str(err))
        raise AuthError("; ".join(problems) or "missing or wrong credentials")

    def _accepts(
        self,
        mechanism: AuthMechanism,
        source: AlertSource,
        headers: Mapping[str, str],
        body: bytes,
    ) -> bool:
        if mechanism is AuthMechanism.HMAC:
            if source is AlertSource.GRAFANA:
                return self._grafana(headers, body)
            return self._pagerduty(headers, body)
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        value = value.strip()
        if mechanism is AuthMechanism.BEARER and scheme.lower() == "bearer" and value:
            assert self._credentials.token is not None
            if _same(value, self._credentials.token):
                return True
            raise AuthError("wrong bearer token")
        if mechanism is AuthMechanism.BASIC and scheme.lower() == "basic" and value:
            assert self._credentials.basic is not None
            try:
                given = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise AuthError("malformed basic credentials") from None
            if _same(given, self._credentials.basic):
                return True
            raise AuthError("wrong basic credentials")
        return False

    def _grafana(self, headers: Mapping[str, str], body: bytes) -> bool:
        signature = headers.get(self._config.grafana_signature_header.lower())
        if signature is None:
            return False
        secret = self._credentials.grafana_secret
        assert secret is not None
        message = body
        stamp_header = self._config.grafana_timestamp_header
        if stamp_header:
            stamp = headers.get(stamp_header.lower(), "").strip()
            if not stamp.isdigit():
                raise AuthError(f"{stamp_header} missing or not a Unix timestamp")
            age = abs(self._clock() - int(stamp))
            if age > self._config.grafana_max_age.total_seconds():
                raise AuthError(f"stale signature timestamp ({age:.0f}s old)")
            message = stamp.encode() + b":" + body
        if _same(signature.strip().lower(), _sign(secret, message)):
            return True
        raise AuthError("wrong Grafana signature")

    def _pagerduty(self, headers: Mapping[str, str], body: bytes) -> bool:
        header = headers.get(PAGERDUTY_SIGNATURE_HEADER.lower())
        if header is None:
            return False
        given = [
            part.strip()[3:]
            for part in header.split(",")
            if part.strip().startswith("v1=") and len(part.strip()) > 3
        ]
        expected = [_sign(secret, body) for secret in self._credentials.pagerduty_secrets]
        matched = False
        for signature in given:
            for candidate in expected:
                matched |= _same(signature.lower(), candidate)
        if matched:
            return True
        raise AuthError("wrong PagerDuty signature")
