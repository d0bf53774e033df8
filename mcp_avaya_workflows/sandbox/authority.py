"""A local OAuth authorization server that issues access tokens for clients of the MCP server.

It is separate from the emulated Avaya realm in `tokens.py`, with its own issuer under
`AUTHORITY_PREFIX`, its own signing key and its own registered clients. Its tokens follow the JWT
access token profile of RFC 9068, with the MCP server's URL as audience (RFC 8707).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySetSerialization, RSAKey

logger = logging.getLogger(__name__)

AUTHORITY_PREFIX = "/mcp-auth"
TOKEN_PATH = AUTHORITY_PREFIX + "/token"
JWKS_PATH = AUTHORITY_PREFIX + "/jwks"
AUTHORIZE_PATH = AUTHORITY_PREFIX + "/authorize"
# RFC 8414 section 3.1 inserts the well-known segment before the issuer's path.
METADATA_PATH = "/.well-known/oauth-authorization-server" + AUTHORITY_PREFIX
# OpenID Connect Discovery 1.0 section 4 appends the well-known segment to the issuer.
OPENID_CONFIGURATION_PATH = AUTHORITY_PREFIX + "/.well-known/openid-configuration"
ALGORITHM = "RS256"
# RFC 9068 section 2.1 gives JWT access tokens this media type in the `typ` header.
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a JOSE media type, not a secret
# Used as `iss` when a token is minted outside an HTTP request, so no base URL is known.
FALLBACK_ISSUER = "http://sandbox.invalid" + AUTHORITY_PREFIX
START_SCOPE = "workflows:start"
READ_SCOPE = "workflows:read"
SUPPORTED_SCOPES = (START_SCOPE, READ_SCOPE)
DEFAULT_TOKEN_TTL_SECONDS = 300
# The `client_id` claim of tokens minted with `ClientAuthority.issue` unless the caller names one.
PYTHON_API_CLIENT_ID = "sandbox-mcp-client"
# Two registered clients, so tests and demos can act as two different users.
ALICE_CLIENT_ID = "mcp-alice"
BOB_CLIENT_ID = "mcp-bob"
DEMO_CLIENT_IDS = (ALICE_CLIENT_ID, BOB_CLIENT_ID)
# RFC 6749 section 3.3: a scope token is one or more of %x21, %x23-5B and %x5D-7E.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class RegisteredClient:
    """A client the authority accepts at its token endpoint, and the `sub` of the tokens it gets."""

    client_id: str
    # Left out of repr, so logging a client never logs its secret.
    secret: str = field(repr=False)
    subject: str


class ClientAuthority:
    """An authorization server that signs RS256 JWT access tokens for MCP clients, with one RSA key per instance.

    Without `client_secrets`, the demo clients `mcp-alice` and `mcp-bob` get random secrets, and
    each demo client's `sub` is its client id. `client_secrets` sets the secrets of demo clients by
    client id, and `extra_clients` registers more clients.
    """

    def __init__(
        self,
        client_secrets: Mapping[str, str] | None = None,
        *,
        extra_clients: Iterable[RegisteredClient] = (),
        token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    ) -> None:
        if token_ttl_seconds <= 0:
            raise ValueError(f"token_ttl_seconds must be 1 or more, got {token_ttl_seconds}")
        self.token_ttl_seconds = token_ttl_seconds
        self._clients = _build_client_table(client_secrets or {}, extra_clients)
        self._key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": ALGORITHM}, auto_kid=True)

    @property
    def kid(self) -> str:
        """The key id in the header of every token and in the JWKS."""
        kid = self._key.kid
        assert kid is not None, "the key is generated with auto_kid=True"
        return kid

    @property
    def clients(self) -> Mapping[str, RegisteredClient]:
        """The registered clients by client id, demo clients first."""
        return dict(self._clients)

    def client_secret(self, client_id: str) -> str:
        """Return the secret of a registered client, or raise KeyError for an unknown client id."""
        client = self._clients.get(client_id)
        if client is None:
            raise KeyError(f"client {client_id!r} is not registered. Registered clients: {', '.join(self._clients)}")
        return client.secret

    def authenticate(self, client_id: str, client_secret: str) -> RegisteredClient | None:
        """Return the registered client if the secret is its own, else None."""
        client = self._clients.get(client_id)
        if client is None:
            return None
        if not hmac.compare_digest(client.secret.encode(), client_secret.encode()):
            return None
        return client

    @staticmethod
    def issuer_for(base_url: str) -> str:
        """Return the issuer URL of the authority served at `base_url`, such as `http://127.0.0.1:8080/mcp-auth`."""
        return base_url.rstrip("/") + AUTHORITY_PREFIX

    def jwks(self) -> KeySetSerialization:
        """Return the public key set that verifies this authority's tokens."""
        return {"keys": [self._key.as_dict(private=False)]}

    def issue(
        self,
        subject: str,
        *,
        audience: str,
        scopes: str | Iterable[str],
        issuer: str | None = None,
        expires_in: int | None = None,
        client_id: str = PYTHON_API_CLIENT_ID,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign a JWT access token in the RFC 9068 profile and return it.

        `scopes` is a list of scope tokens or one space-separated string. Any scope token is
        accepted, so a test can mint a token with a scope the MCP server does not know. An empty
        `scopes` leaves the `scope` claim out. `issuer` defaults to FALLBACK_ISSUER, and
        `expires_in` to the authority's token lifetime in seconds. A negative `expires_in` mints
        a token that has already expired. `extra_claims` are added last and replace standard
        claims of the same name.
        """
        _check_text("subject", subject)
        _check_text("audience", audience)
        _check_text("client_id", client_id)
        scope_tokens = _split_scopes(scopes)
        lifetime = self.token_ttl_seconds if expires_in is None else expires_in
        issued_at = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or FALLBACK_ISSUER,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime,
            "jti": secrets.token_hex(16),
        }
        if scope_tokens:
            claims["scope"] = " ".join(scope_tokens)
        claims.update(extra_claims or {})
        header = {"alg": ALGORITHM, "typ": ACCESS_TOKEN_TYPE, "kid": self.kid}
        token = jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])
        logger.debug(
            "mcp client token issued client_id=%s sub=%s aud=%s scope=%s jti=%s",
            client_id,
            subject,
            audience,
            claims.get("scope", ""),
            claims["jti"],
        )
        return token

    def metadata(self, base_url: str) -> dict[str, Any]:
        """Build the RFC 8414 authorization server metadata of the authority served at `base_url`."""
        base = base_url.rstrip("/")
        return {
            "issuer": self.issuer_for(base),
            # The MCP SDK's metadata model (mcp 2.3, mcp.shared.auth.OAuthMetadata) rejects metadata
            # without an authorization endpoint. This one exists but rejects every request, because the
            # authority supports no response types.
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "jwks_uri": base + JWKS_PATH,
            "response_types_supported": [],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": list(SUPPORTED_SCOPES),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }


def _build_client_table(
    client_secrets: Mapping[str, str], extra_clients: Iterable[RegisteredClient]
) -> dict[str, RegisteredClient]:
    unknown = sorted(set(client_secrets) - set(DEMO_CLIENT_IDS))
    if unknown:
        raise ValueError(
            f"client_secrets names {', '.join(map(repr, unknown))}, which is not a demo client. "
            f"Use one of {', '.join(DEMO_CLIENT_IDS)}, or register other clients with extra_clients."
        )
    clients: dict[str, RegisteredClient] = {}
    for client_id in DEMO_CLIENT_IDS:
        secret = client_secrets.get(client_id, secrets.token_urlsafe(24))
        clients[client_id] = RegisteredClient(client_id=client_id, secret=secret, subject=client_id)
    for client in extra_clients:
        if client.client_id in clients:
            raise ValueError(f"extra_clients repeats the client id {client.client_id!r}")
        clients[client.client_id] = client
    for client in clients.values():
        _check_text("client_id", client.client_id)
        _check_text(f"the secret of client {client.client_id!r}", client.secret)
        _check_text(f"the subject of client {client.client_id!r}", client.subject)
    return clients


def _check_text(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _split_scopes(scopes: str | Iterable[str]) -> list[str]:
    """Return the scope tokens of a space-separated string or a list, without repeats, in their order."""
    tokens = scopes.split() if isinstance(scopes, str) else list(scopes)
    for token in tokens:
        if not isinstance(token, str) or not SCOPE_TOKEN.fullmatch(token):
            raise ValueError(
                f"invalid scope token {token!r}: a scope token is one or more printable ASCII characters "
                'other than space, " and \\'
            )
    return list(dict.fromkeys(tokens))
