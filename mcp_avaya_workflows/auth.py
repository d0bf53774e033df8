"""OAuth 2.0 client-credentials tokens for the Infinity API.

authlib's async client performs the grant. This module adds what a server
with many concurrent calls needs on top of it. It reuses a cached token until
shortly before it expires, sends a single token request however many calls
need one at once, and drops a token after a 401 so that one refresh follows.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx2
from pydantic import SecretStr

from .errors import (
    AuthenticationError,
    InvalidResponseError,
    RateLimitedError,
    TokenUnavailableError,
    UpstreamError,
)
from .redaction import Redactor
from .response_headers import retry_after_seconds
from .retry import RetryPolicy, retrying
from .strict_json import reject_constant, reject_duplicate_keys

if TYPE_CHECKING:
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

logger = logging.getLogger(__name__)

# Keycloak returns these codes for a bad client, with HTTP 400 or 401 depending on the realm.
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"})


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and the time (epoch seconds) it stops being valid."""

    value: str
    expires_at: float

    def __repr__(self) -> str:
        return f"AccessToken(value='[redacted]', expires_at={self.expires_at})"


# A client-credentials token response is a few kilobytes; anything far larger is not one.
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024


def _check_token_response(response: httpx2.Response) -> httpx2.Response:
    """Classify a token response before authlib reads it as an OAuth error or a token."""
    if response.status_code == 429:
        raise RateLimitedError(
            "The token endpoint is rate limiting",
            endpoint="token",
            status=429,
            retry_after=retry_after_seconds(response.headers),
        )
    if response.status_code >= 500:
        raise TokenUnavailableError(
            "The token endpoint returned an error", endpoint="token", status=response.status_code
        )
    if len(response.content) > MAX_TOKEN_RESPONSE_BYTES:
        raise InvalidResponseError(
            f"The token response is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes",
            endpoint="token",
            status=response.status_code,
        )
    return response


class TokenProvider:
    """Fetch, cache and refresh client-credentials tokens."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str | None,
        leeway_seconds: int,
        timeout: httpx2.Timeout,
        redactor: Redactor,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._token_url = token_url
        self._retry_policy = retry_policy or RetryPolicy()
        self._leeway = leeway_seconds
        self._redactor = redactor
        redactor.add_secret(client_secret.get_secret_value())
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._timeout = timeout
        # Created by the first token request, see `_oauth_client`.
        self._oauth: AsyncOAuth2Client | None = None
        self._closed = False
        self._lock = anyio.Lock()
        self._token: AccessToken | None = None

    async def aclose(self) -> None:
        self._closed = True
        if self._oauth is not None:
            await self._oauth.aclose()

    def _oauth_client(self) -> AsyncOAuth2Client:
        """Return the OAuth client, creating it on first use.

        Importing authlib (which imports joserfc) and building the client's TLS context take tens of
        milliseconds, so a server that never needs a token, or has not needed one yet, responds to its first
        MCP requests without that delay.
        """
        if self._oauth is not None:
            return self._oauth
        if self._closed:
            raise RuntimeError("Cannot request a token, as the token provider has been closed.")
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        # Avaya's guide sends client_id and client_secret in the form body (client_secret_post).
        oauth = AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret.get_secret_value(),
            scope=self._scope,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name, not a secret
            timeout=self._timeout,
        )
        oauth.register_compliance_hook("access_token_response", _check_token_response)
        self._oauth = oauth
        return oauth

    async def get_token(self, deadline: float = math.inf) -> str:
        """Return a valid access token, fetching one only when the cached one is missing or expiring.

        A failed token request is retried as `retry.is_retryable` allows, with no backoff past `deadline`
        (on the anyio clock).
        """
        token = self._token
        if token is not None and not self._is_expiring(token):
            return token.value
        async with self._lock:
            # Another call may have refreshed while this one waited for the lock.
            cached = self._token
            if cached is not None and not self._is_expiring(cached):
                return cached.value
            fresh: AccessToken = await retrying(self._retry_policy, "token", deadline)(self._fetch)
            self._token = fresh
            return fresh.value

    def invalidate(self, rejected: str) -> None:
        """Forget `rejected` after a 401, unless a newer token already replaced it."""
        if self._token is not None and self._token.value == rejected:
            self._token = None

    def _is_expiring(self, token: AccessToken) -> bool:
        return token.expires_at - self._leeway <= time.time()

    async def _fetch(self) -> AccessToken:
        from authlib.integrations.base_client.errors import OAuthError

        oauth = self._oauth_client()
        started = time.perf_counter()
        try:
            response = await oauth.fetch_token(self._token_url, grant_type="client_credentials")
        except OAuthError as exc:
            raise self._credential_error(exc) from None
        except httpx2.HTTPStatusError as exc:
            raise TokenUnavailableError(
                "The token endpoint returned an error", endpoint="token", status=exc.response.status_code
            ) from None
        except (httpx2.TimeoutException, httpx2.TransportError) as exc:
            raise TokenUnavailableError(
                f"The token endpoint could not be reached: {type(exc).__name__}", endpoint="token"
            ) from None
        except ValueError:
            raise InvalidResponseError(
                "The token endpoint returned a body that is not JSON", endpoint="token"
            ) from None
        token = self._parse(dict(response))
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "oauth.token_refreshed expires_in=%.0fs duration_ms=%.0f", token.expires_at - time.time(), elapsed_ms
        )
        return token

    def _credential_error(self, exc: OAuthError) -> UpstreamError:
        code = str(exc.error)
        if code in _CREDENTIAL_ERRORS:
            return AuthenticationError(
                f"The token endpoint rejected the client credentials ({code})", endpoint="token", upstream_error=code
            )
        return AuthenticationError(
            f"The token endpoint rejected the request ({self._redactor.scrub_text(code)[:64]})",
            endpoint="token",
            upstream_error=code,
        )

    def _parse(self, body: dict[str, object]) -> AccessToken:
        value = body.get("access_token")
        token_type = str(body.get("token_type", "bearer"))
        # Avaya's documents show both `bearer` and `Bearer`; RFC 6749 makes the type case-insensitive.
        if not isinstance(value, str) or not value or token_type.lower() != "bearer":
            raise InvalidResponseError("The token endpoint returned no bearer access token", endpoint="token")
        self._redactor.add_secret(value, rolling=True)
        return AccessToken(value=value, expires_at=self._expiry(value, body.get("expires_in")))

    def _expiry(self, value: str, expires_in: object) -> float:
        """Return the JWT's `exp` claim, which Avaya calls authoritative, else now plus `expires_in`.

        The signature is not checked: the claim only schedules the refresh, and Infinity verifies the token.
        """
        exp = _read_exp_claim(value)
        if exp is not None:
            return exp
        lifetime = _finite_seconds(expires_in)
        if lifetime is not None and lifetime > 0:
            return time.time() + lifetime
        # Neither exp nor expires_in: assume Avaya's usual 15 minutes.
        return time.time() + 900


def _read_exp_claim(token: str) -> float | None:
    """Return the token's `exp` claim, or None for an opaque token or a payload that is ambiguous or malformed.

    A repeated key, NaN, an infinity or an overflowing number makes the payload unusable. A non-finite
    expiry would never compare as expiring, so the token would be used until Infinity rejects it.
    """
    from joserfc import jws
    from joserfc.errors import JoseError

    try:
        claims = json.loads(
            jws.extract_compact(token.encode()).payload,
            object_pairs_hook=reject_duplicate_keys,
            parse_constant=reject_constant,
        )
    except (JoseError, ValueError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return _finite_seconds(exp)


def _finite_seconds(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None
