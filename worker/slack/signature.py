"""Is this request from Slack, and fresh? Slack signs every interaction with the app's signing
secret: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<raw body>")>`, with
the time in `X-Slack-Request-Timestamp`. The signature is checked before the timestamp, so a
refusal names the real problem: an unsigned request is "forged" whatever time it claims, and a
correctly signed old one is a replay ("stale"). The window applies both ways, so a clock far
ahead cannot mint requests that stay valid for long.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
VERSION = "v0"

Problem = Literal["forged", "stale"]


class SignatureRefused(Exception):
    """Not from Slack, or not now: `problem` for metrics, the message for people and logs
    (never the signature or the secret)."""

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The header value Slack sends for this body (also what tests sign with)."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def _age(seconds: float) -> str:
    whole = round(abs(seconds))
    amount = f"{round(whole / 60)} min" if whole >= 60 else f"{whole} s"
    return f"{amount} old" if seconds >= 0 else f"{amount} in the future"


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float, max_age: timedelta
) -> None:
    """Raise SignatureRefused unless Slack signed exactly this body within `max_age` of now.
    `headers` is looked up in lower case (Starlette's Headers, or a plain lower-case dict)."""
    signature = headers.get(SIGNATURE_HEADER.lower(), "").strip()
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "").strip()
    if not signature or not stamp:
        missing = SIGNATURE_HEADER if not signature else TIMESTAMP_HEADER
        raise SignatureRefused("forged", f"forged signature (no {missing} header)")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise SignatureRefused("forged", f"forged signature ({TIMESTAMP_HEADER} is not a time)")
    expected = sign(secret, stamp, body)
    if not hmac.compare_digest(signature.encode(errors="replace"), expected.encode()):
        raise SignatureRefused("forged", "forged signature")
    age = now - int(stamp)
    if abs(age) > max_age.total_seconds():
        raise SignatureRefused("stale", f"stale request (timestamp {_age(age)})")
