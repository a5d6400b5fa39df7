"""ID tokens from the team's identity provider, verified with PyJWT against the provider's
JWKS: signature, algorithm, issuer, audience, expiry; the approver is a configured claim."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt

from worker.settings.webhook import OidcSettings


class TokenRefused(Exception):
    """Why a token proves nothing: answered 401 with this reason."""


class TokenVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        self._settings = settings
        self._keys = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=5)

    async def approver(self, token: str) -> str:
        """The verified identity the token names (its `approver_claim`)."""
        claims = await asyncio.to_thread(self._verify, token)
        name = claims.get(self._settings.approver_claim)
        if not isinstance(name, str) or not name:
            raise TokenRefused(f"the token has no `{self._settings.approver_claim}` claim")
        return name

    def _verify(self, token: str) -> dict[str, Any]:
        s = self._settings
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.DecodeError as err:
            raise TokenRefused(f"not a JWT: {err}") from None
        if algorithm not in s.algorithms:
            raise TokenRefused(
                f"algorithm {algorithm!r} is not accepted ({', '.join(s.algorithms)})"
            )
        try:
            key = self._keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as err:
            raise TokenRefused(f"the identity provider's keys cannot be read: {err}") from None
        except jwt.PyJWKClientError as err:
            raise TokenRefused(
                f"signed by a key the identity provider does not publish: {err}"
            ) from None
        return _decode(token, key.key, s)


def _decode(token: str, key: Any, s: OidcSettings) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=s.algorithms,
            audience=s.audience,
            issuer=s.issuer,
            leeway=s.leeway,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused(f"the token is not for this audience ({s.audience})") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused(f"the token was not issued by {s.issuer}") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("the token's signature does not verify") from None
    except jwt.InvalidTokenError as err:
        raise TokenRefused(f"the token is not valid: {err}") from None
    return claims
