"""Authentication decisions, without a server: each mechanism accepts the right credential and
refuses a wrong, stale or absent one."""

from __future__ import annotations

import base64

import pytest

from tests.intake.test_webhook_helpers import hmac_hex
from worker.intake.auth import Authenticator, AuthError, Credentials
from worker.settings.runbook import Settings
from worker.settings.webhook import AlertSource

BODY = b'{"alerts": []}'
NOW = 1_800_000_000


def authenticator(**secrets: object) -> Authenticator:
    settings = Settings(**secrets)  # type: ignore[arg-type]
    return Authenticator(
        Credentials.from_settings(settings), settings.webhook, clock=lambda: float(NOW)
    )


def test_bearer_token() -> None:
    auth = authenticator(webhook_token="tok")
    assert auth.check(AlertSource.ALERTMANAGER, {"authorization": "Bearer tok"}, BODY) == "bearer"
    assert auth.check(AlertSource.GENERIC, {"authorization": "bearer  tok "}, BODY) == "bearer"
    for headers in ({}, {"authorization": "Bearer tok2"}, {"authorization": "Token tok"}):
        with pytest.raises(AuthError):
            auth.check(AlertSource.ALERTMANAGER, headers, BODY)


def test_basic_auth_compares_user_and_password() -> None:
    auth = authenticator(webhook_basic_password="pw", webhook={"basic_username": "am"})

    def basic(pair: bytes) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(pair).decode()}

    assert auth.check(AlertSource.PAGERDUTY, basic(b"am:pw"), BODY) == "basic"
    for pair in (b"am:PW", b"other:pw", b"am:pw:"):
        with pytest.raises(AuthError, match="wrong basic"):
            auth.check(AlertSource.PAGERDUTY, basic(pair), BODY)


def test_grafana_signature_with_and_without_timestamp() -> None:
    plain = authenticator(grafana_secret="gs")
    headers = {"x-grafana-alerting-signature": hmac_hex("gs", BODY)}
    assert plain.check(AlertSource.GRAFANA, headers, BODY) == "hmac"
    with pytest.raises(AuthError, match="wrong Grafana"):
        plain.check(AlertSource.GRAFANA, headers, BODY + b" ")

    stamped = authenticator(
        grafana_secret="gs",
        webhook={"grafana_timestamp_header": "X-Ts", "grafana_max_age": "1m"},
    )

    def signed(stamp: int) -> dict[str, str]:
        sig = hmac_hex("gs", f"{stamp}:".encode() + BODY)
        return {"x-grafana-alerting-signature": sig, "x-ts": str(stamp)}

    assert stamped.check(AlertSource.GRAFANA, signed(NOW - 30), BODY) == "hmac"
    with pytest.raises(AuthError, match="stale"):
        stamped.check(AlertSource.GRAFANA, signed(NOW - 120), BODY)
    with pytest.raises(AuthError, match="Unix timestamp"):
        stamped.check(AlertSource.GRAFANA, {"x-grafana-alerting-signature": "00"}, BODY)
    with pytest.raises(AuthError, match="no credentials"):  # grafana secret does not open AM
        stamped.check(AlertSource.ALERTMANAGER, signed(NOW), BODY)


def test_pagerduty_signatures_during_rotation() -> None:
    auth = authenticator(pagerduty_secrets="old,new")
    for header in (
        f"v1={hmac_hex('new', BODY)}",
        f"v1={hmac_hex('zzz', BODY)},v1={hmac_hex('old', BODY)}",
        f"v1={hmac_hex('new', BODY).upper()}",
    ):
        assert auth.check(AlertSource.PAGERDUTY, {"x-pagerduty-signature": header}, BODY)
    for header in (f"v1={hmac_hex('zzz', BODY)}", "v1=", f"v0={hmac_hex('new', BODY)}"):
        with pytest.raises(AuthError):
            auth.check(AlertSource.PAGERDUTY, {"x-pagerduty-signature": header}, BODY)


def test_mechanisms_are_per_source() -> None:
    auth = authenticator(webhook_token="tok", webhook={"auth": {"grafana": ["hmac"]}})
    with pytest.raises(AuthError, match="no credentials"):
        auth.check(AlertSource.GRAFANA, {"authorization": "Bearer tok"}, BODY)
    assert auth.check(AlertSource.PAGERDUTY, {"authorization": "Bearer tok"}, BODY) == "bearer"
