"""OAuth 2.1 resource server: verify MCP clients' bearer tokens and enforce the start and read scopes.

The HTTP transport accepts JWT access tokens (RFC 9068) from one issuer. A
token counts only when its signature verifies against the issuer's JWKS, its
`iss` is that issuer, its audience names this server's public URL (RFC 8707),
it has a subject, and it has not expired. The principal is the issuer plus
the subject, so two users of one client application stay apart.

These tokens authenticate clients to this server only. They are never sent
to Infinity, which gets the server's own client-credentials token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent

from .audit import AuditLog, AuditRecord
from .errors import ConfigurationError
from .principal import principal_of_token
from .settings import is_loopback_host

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: a shared-secret (HS*) or unsigned ("none") token is never accepted.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# RFC 9068 access tokens carry `typ: at+jwt`. Keycloak, Microsoft Entra ID and others send `JWT`, so both pass.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
MAX_TOKEN_CHARS = 8192
CLOCK_LEEWAY_SECONDS = 30
JWKS_CACHE_SECONDS = 600.0
# An unknown key ID makes the verifier fetch the JWKS again, but not more often than this, so a flood of
# tokens with made-up key IDs cannot turn into a flood of requests to the issuer.
JWKS_REFETCH_SECONDS = 30.0
# How long the last good keys stay in use while the issuer cannot be reached.
JWKS_STALE_SECONDS = 24 * 3600.0
MAX_METADATA_BYTES = 256 * 1024


class JwtTokenVerifier:
    """Verify bearer tokens against one issuer's JWKS; an `mcp` SDK `TokenVerifier`."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        http: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._jwks_url = jwks_url
        self._http = http or httpx2.AsyncClient(timeout=httpx2.Timeout(5.0), follow_redirects=False)
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = -float("inf")
        self._attempted_at = -float("inf")
        self._lock = anyio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify_token(self, token: str) -> AccessToken | None:
        """Return the token's identity and scopes, or None for any token this server must refuse."""
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            return self._reject("malformed")
        try:
            keys = await self._key_set(refresh=False)
            try:
                decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
            except JoseError as exc:
                if not _unknown_key(exc):
                    raise
                # The issuer may have rotated its keys since the last fetch.
                keys = await self._key_set(refresh=True)
                decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except JoseError as exc:
            return self._reject(type(exc).__name__)
        except JwksUnavailableError:
            return self._reject("no_keys")
        token_type = decoded.header.get("typ")
        if token_type is not None and str(token_type).lower() not in ACCESS_TOKEN_TYPES:
            # Another kind of JWT from the same issuer, such as a DPoP proof or a logout token.
            return self._reject("type")
        return self._check_claims(decoded.claims)

    def _check_claims(self, claims: Mapping[str, Any]) -> AccessToken | None:
        now = self._clock()
        if claims.get("iss") != self.issuer:
            return self._reject("issuer")
        if not _names_audience(claims.get("aud"), self.audience):
            return self._reject("audience")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            return self._reject("subject")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool) or expires + CLOCK_LEEWAY_SECONDS < now:
            return self._reject("expired")
        not_before = claims.get("nbf")
        if not_before is not None and (not _is_number(not_before) or not_before - CLOCK_LEEWAY_SECONDS > now):
            return self._reject("not_yet_valid")
        client_id = claims.get("client_id") or claims.get("azp") or subject
        return AccessToken(
            token="",  # the raw token is not kept: nothing downstream needs it, and nothing may forward it
            client_id=str(client_id),
            scopes=_scopes(claims),
            expires_at=int(expires),
            resource=self.audience,
            subject=subject,
            claims={"iss": self.issuer},
        )

    @staticmethod
    def _reject(reason: str) -> AccessToken | None:
        # The token itself is never logged: it is a credential even when it is invalid.
        logger.info("auth.token_rejected reason=%s", reason)
        return None

    async def _key_set(self, *, refresh: bool) -> KeySet:
        """Return the issuer's keys, fetching them when the cache is old or a key ID is unknown.

        A failed fetch keeps the last good keys for up to JWKS_STALE_SECONDS and waits JWKS_REFETCH_SECONDS
        before the next attempt, so an outage of the issuer neither rejects valid tokens at once nor turns
        every request into another fetch. Requests that arrive during a fetch wait for it instead of
        starting their own.
        """
        async with self._lock:
            now = self._clock()
            since_attempt = now - self._attempted_at
            due = self._keys is None or now - self._fetched_at > JWKS_CACHE_SECONDS
            if (due or refresh) and since_attempt > JWKS_REFETCH_SECONDS:
                self._attempted_at = now
                try:
                    self._keys = await self._fetch_keys()
                    self._fetched_at = self._clock()
                except JwksUnavailableError as exc:
                    logger.warning("auth.jwks_unavailable reason=%s", exc)
            if self._keys is None or now - self._fetched_at > JWKS_STALE_SECONDS:
                raise JwksUnavailableError("no keys of the issuer could be loaded")
            return self._keys

    async def _fetch_keys(self) -> KeySet:
        url = self._jwks_url or await self._discover_jwks_url()
        document = await self._get_json(url)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise JwksUnavailableError(f"the JWKS at {url} is not a valid key set ({type(exc).__name__})") from None
        logger.info("auth.jwks_loaded url=%s keys=%d", url, len(keys.keys))
        return keys

    async def _discover_jwks_url(self) -> str:
        """Read `jwks_uri` from the issuer's RFC 8414 metadata, or its OpenID configuration."""
        for url in metadata_urls(self.issuer):
            try:
                metadata = await self._get_json(url)
            except JwksUnavailableError:
                continue
            if metadata.get("issuer") != self.issuer:
                # RFC 8414 section 3.3: metadata for another issuer must not be used.
                raise JwksUnavailableError(f"the metadata at {url} names another issuer")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not _acceptable_url(jwks_uri):
                raise JwksUnavailableError(f"the metadata at {url} has no usable https jwks_uri")
            self._jwks_url = jwks_uri
            return jwks_uri
        raise JwksUnavailableError(f"no authorization server metadata found for issuer {self.issuer}")

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise JwksUnavailableError(f"{url} could not be fetched ({type(exc).__name__})") from None
        if response.status_code != 200 or len(response.content) > MAX_METADATA_BYTES:
            raise JwksUnavailableError(f"{url} returned HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise JwksUnavailableError(f"{url} did not return JSON") from None
        if not isinstance(document, dict):
            raise JwksUnavailableError(f"{url} did not return a JSON object")
        return document


class JwksUnavailableError(Exception):
    """The issuer's keys could not be loaded, so no token can be verified right now."""


def metadata_urls(issuer: str) -> list[str]:
    """Return the RFC 8414 metadata URL of `issuer`, then its OpenID Connect discovery URL."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


def _unknown_key(exc: JoseError) -> bool:
    return type(exc).__name__ in {"InvalidKeyIdError", "MissingKeyError", "KeyError"} or "kid" in str(exc)


def _names_audience(aud: object, audience: str) -> bool:
    expected = audience.rstrip("/")
    values = aud if isinstance(aud, list) else [aud]
    return any(isinstance(value, str) and value.rstrip("/") == expected for value in values)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    # RFC 9068 uses a space-separated `scope`; some issuers, such as Microsoft Entra ID, send `scp`.
    raw = claims.get("scope") or claims.get("scp") or ""
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [item for item in raw if isinstance(item, str)]
    return []


def _acceptable_url(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))


def check_issuer_url(issuer: str) -> None:
    """Raise `ConfigurationError` for an issuer URL that tokens cannot be checked against safely."""
    if not _acceptable_url(issuer):
        raise ConfigurationError(
            ["AVAYA_WORKFLOWS_AUTH_ISSUER must be an https URL (plain http only for a loopback address)."]
        )


class ScopeMiddleware:
    """Refuse a tool call whose bearer token lacks the tool's scope.

    Read-only tools need the read scope; every other tool starts workflows and
    needs the start scope. Calls without a bearer token (stdio, or HTTP without
    auth) are not checked here: that transport already decided who may connect.
    """

    def __init__(self, tools: list[Tool], audit_log: AuditLog, *, start_scope: str, read_scope: str) -> None:
        self._needed = {
            tool.name: read_scope if tool.annotations and tool.annotations.read_only_hint else start_scope
            for tool in tools
        }
        self._audit_log = audit_log

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        token = get_access_token()
        params = ctx.params
        if token is None or ctx.method != "tools/call" or not isinstance(params, Mapping):
            return await call_next(ctx)
        tool = params.get("name")
        needed = self._needed.get(tool) if isinstance(tool, str) else None
        if needed is None or needed in token.scopes:
            return await call_next(ctx)
        logger.info("auth.scope_missing tool=%s scope=%s", tool, needed)
        audit = AuditRecord(str(tool), principal_of_token(token))
        audit.reject("forbidden", "scope")
        self._audit_log.write(audit)
        text = (
            f"Error executing tool {tool}: the access token lacks the scope '{needed}' that this tool needs. "
            "Ask the user to sign in again granting that scope, or ask the operator to grant it."
        )
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
