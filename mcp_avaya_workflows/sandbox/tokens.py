"""Signed access tokens in the form Avaya's Keycloak realm issues them, with revocation."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from .paths import REALM_PREFIX

ALGORITHM = "RS256"
# Used as `iss` when a token is minted outside an HTTP request, so no base URL is known.
FALLBACK_ISSUER = "http://sandbox.invalid" + REALM_PREFIX
TOKEN_AUDIENCE = "avaya-workflows-api"  # noqa: S105 - an audience name, not a secret
DEFAULT_SCOPE = "workflows:execute"


class InvalidTokenError(Exception):
    """Raised when a bearer token is malformed, badly signed, expired or revoked."""


@dataclass(frozen=True)
class IssuedToken:
    """An access token together with the claims it carries."""

    value: str
    claims: dict[str, Any]


class TokenIssuer:
    """Signs tokens with one RSA key per instance and verifies them, tracking which ids are revoked."""

    def __init__(self, ttl_seconds: int) -> None:
        if ttl_seconds < 0:
            raise ValueError(f"token_ttl_seconds must be 0 or more, got {ttl_seconds}")
        self.ttl_seconds = ttl_seconds
        self._key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": ALGORITHM}, auto_kid=True)
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._revoked: set[str] = set()

    def issue(self, client_id: str, scope: str, issuer: str | None = None) -> IssuedToken:
        """Sign a client-credentials access token for `client_id`."""
        issued_at = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or FALLBACK_ISSUER,
            # Keycloak's `sub` for a client-credentials grant is the service account's user id.
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"service-account-{client_id}")),
            "azp": client_id,
            "aud": TOKEN_AUDIENCE,
            "iat": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": secrets.token_hex(16),
            "scope": scope,
        }
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self._key.kid}
        value = jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])
        with self._lock:
            self._issued.add(claims["jti"])
        return IssuedToken(value, claims)

    def verify(self, value: str) -> dict[str, Any]:
        """Return the claims of a valid token; raise InvalidTokenError naming the reason otherwise."""
        try:
            token = jwt.decode(value, self._key, algorithms=[ALGORITHM])
            registry = jwt.JWTClaimsRegistry(exp={"essential": True}, jti={"essential": True}, azp={"essential": True})
            registry.validate(token.claims)
        except JoseError as exc:
            raise InvalidTokenError(f"access token rejected: {exc.description or exc.error}") from exc
        except ValueError as exc:
            raise InvalidTokenError(f"access token rejected: {exc}") from exc
        with self._lock:
            if token.claims["jti"] in self._revoked:
                raise InvalidTokenError("access token rejected: the token has been revoked")
        return token.claims

    def revoke(self, value: str) -> bool:
        """Revoke one token, expired or not, and tell whether it carried this issuer's signature."""
        try:
            token = jwt.decode(value, self._key, algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            return False
        token_id = token.claims.get("jti")
        if not isinstance(token_id, str):
            return False
        with self._lock:
            self._revoked.add(token_id)
        return True

    def revoke_all(self) -> int:
        """Revoke every token issued so far and return how many that was; later tokens stay valid."""
        with self._lock:
            self._revoked.update(self._issued)
            return len(self._issued)

    def jwks(self) -> dict[str, Any]:
        """Return the public key set served at the realm's `certs` endpoint."""
        return {"keys": [self._key.as_dict(private=False)]}
