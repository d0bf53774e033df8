"""The endpoints of the local MCP client authorization server: metadata, JWKS and a client-credentials token endpoint.

Injected faults never apply here, because they emulate failures of Avaya's side only.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth_routes import FORM_MEDIA_TYPE, parse_basic_auth, read_form
from .authority import (
    AUTHORITY_PREFIX,
    AUTHORIZE_PATH,
    JWKS_PATH,
    METADATA_PATH,
    OPENID_CONFIGURATION_PATH,
    SUPPORTED_SCOPES,
    TOKEN_PATH,
    RegisteredClient,
)
from .recording import exchange_of
from .responses import NO_STORE_HEADERS, OAuthError
from .state import SandboxState

logger = logging.getLogger(__name__)

# RFC 6749 section 5.2: a 401 for a client that tried to authenticate carries a matching challenge.
CLIENT_CHALLENGE = {"WWW-Authenticate": f'Basic realm="{AUTHORITY_PREFIX.lstrip("/")}"'}
MAX_RESOURCE_CHARS = 2048
# Request values quoted in error descriptions are cut to this many characters.
MAX_QUOTED_CHARS = 80
RESOURCE_EXAMPLE = "http://127.0.0.1:8000/mcp"


class AuthorityEndpoints:
    """Handlers for the authorization server that issues MCP client tokens, under `/mcp-auth`."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """Return the Starlette routes of the authorization server."""
        return [
            Route(METADATA_PATH, self.metadata, methods=["GET"]),
            Route(OPENID_CONFIGURATION_PATH, self.metadata, methods=["GET"]),
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET", "POST"]),
        ]

    async def metadata(self, request: Request) -> Response:
        """Serve the authorization server metadata, with URLs on the base URL of the request."""
        return JSONResponse(self.state.authority.metadata(str(request.base_url)))

    async def jwks(self, request: Request) -> Response:
        """Serve the public key that verifies the authority's tokens."""
        return JSONResponse(self.state.authority.jwks())

    async def authorize(self, request: Request) -> Response:
        """Reject every authorization request, because the authority supports the client-credentials grant only."""
        # RFC 6749 section 4.1.2.1: without a registered redirect URI the error goes to the caller, not a redirect.
        token_endpoint = str(request.base_url).rstrip("/") + TOKEN_PATH
        description = (
            "this authorization server has no authorization code or implicit flow. "
            f"Request a token with grant_type=client_credentials at {token_endpoint}"
        )
        return OAuthError(400, "unsupported_response_type", description).to_response()

    async def token(self, request: Request) -> Response:
        """Issue an access token for a client-credentials grant whose `resource` becomes the audience."""
        try:
            _check_form_media_type(request)
            form, repeated = await read_form(request)
            _check_not_repeated(repeated)
            client = self._authenticate(request, form)
            _check_grant_type(form.get("grant_type"))
            scopes = _granted_scopes(form.get("scope"))
            audience = _audience(form.get("resource"), repeated)
        except OAuthError as exc:
            logger.info(
                "mcp-auth token request rejected status=%d error=%s client_id=%s description=%s",
                exc.status,
                exc.error,
                exchange_of(request).client_id,
                exc.description,
            )
            return exc.to_response()

        authority = self.state.authority
        token = authority.issue(
            client.subject,
            audience=audience,
            scopes=scopes,
            issuer=authority.issuer_for(str(request.base_url)),
            client_id=client.client_id,
        )
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": authority.token_ttl_seconds,
            "scope": " ".join(scopes),
        }
        return JSONResponse(body, headers=NO_STORE_HEADERS)

    def _authenticate(self, request: Request, form: dict[str, str]) -> RegisteredClient:
        """Check the client's credentials from HTTP Basic (client_secret_basic) or the form (client_secret_post)."""
        try:
            basic = parse_basic_auth(request.headers.get("authorization"))
        except OAuthError as exc:
            description = "invalid Basic authorization header: send the base64 encoding of client_id:client_secret"
            raise OAuthError(401, "invalid_client", description, CLIENT_CHALLENGE) from exc
        client_id, secret = (form.get("client_id"), form.get("client_secret")) if basic is None else basic
        exchange_of(request).client_id = client_id or None
        if basic is not None:
            _check_single_method(form, client_id or "")
        if not client_id or secret is None:
            description = (
                "missing client authentication: send client_id and client_secret in the form (client_secret_post) "
                "or in an HTTP Basic authorization header (client_secret_basic)"
            )
            raise OAuthError(401, "invalid_client", description, CLIENT_CHALLENGE)
        client = self.state.authority.authenticate(client_id, secret)
        if client is None:
            # The same description for an unknown client and a wrong secret, so neither is revealed.
            description = "client authentication failed: unknown client_id or wrong client_secret"
            raise OAuthError(401, "invalid_client", description, CLIENT_CHALLENGE)
        return client


def _check_form_media_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        description = f"the token request body must be form-encoded: send Content-Type {FORM_MEDIA_TYPE}"
        raise OAuthError(400, "invalid_request", description)


def _check_not_repeated(repeated: frozenset[str]) -> None:
    # RFC 6749 section 3.2 forbids sending a parameter more than once. RFC 8707 allows several resource
    # parameters, which `_audience` rejects with its own error.
    others = sorted(repeated - {"resource"})
    if others:
        raise OAuthError(
            400, "invalid_request", f"the form parameter {others[0]} was sent more than once. Send it once"
        )


def _check_single_method(form: dict[str, str], basic_client_id: str) -> None:
    # RFC 6749 section 2.3: a client must not use more than one authentication method in a request.
    if "client_secret" in form:
        description = (
            "the client authenticated twice, with HTTP Basic and with client_secret in the form. Use only one method"
        )
        raise OAuthError(400, "invalid_request", description)
    form_client_id = form.get("client_id")
    if form_client_id and form_client_id != basic_client_id:
        raise OAuthError(400, "invalid_request", "client_id in the form differs from the client id in the Basic header")


def _check_grant_type(grant_type: str | None) -> None:
    if not grant_type:
        raise OAuthError(
            400, "invalid_request", "missing form parameter grant_type: send grant_type=client_credentials"
        )
    if grant_type != "client_credentials":
        description = (
            f"unsupported grant_type {_quote(grant_type)}: this authorization server supports client_credentials only"
        )
        raise OAuthError(400, "unsupported_grant_type", description)


def _granted_scopes(scope: str | None) -> list[str]:
    """Return the requested scopes without repeats, or every supported scope when `scope` is missing or blank."""
    requested = (scope or "").split()
    if not requested:
        return list(SUPPORTED_SCOPES)
    for token in requested:
        if token not in SUPPORTED_SCOPES:
            description = (
                f"unknown scope {_quote(token)} in scope: request {' or '.join(SUPPORTED_SCOPES)}, "
                "or both separated by a space"
            )
            raise OAuthError(400, "invalid_scope", description)
    return list(dict.fromkeys(requested))


def _audience(resource: str | None, repeated: frozenset[str]) -> str:
    """Return the RFC 8707 resource indicator of the request, which becomes the token's `aud`."""
    if "resource" in repeated:
        description = (
            "the form parameter resource was sent more than once. This server issues a token for one resource at a time"
        )
        raise OAuthError(400, "invalid_target", description)
    if not resource:
        description = f"missing form parameter resource: send the MCP server's URL, such as {RESOURCE_EXAMPLE}"
        raise OAuthError(400, "invalid_target", description)
    problem = _resource_problem(resource)
    if problem is not None:
        description = (
            f"invalid resource {_quote(resource)}: {problem}. Send the MCP server's URL, such as {RESOURCE_EXAMPLE}"
        )
        raise OAuthError(400, "invalid_target", description)
    return resource


def _resource_problem(resource: str) -> str | None:
    """Say why `resource` is not an absolute http(s) URL without a fragment (RFC 8707 section 2), or return None."""
    if len(resource) > MAX_RESOURCE_CHARS:
        return f"it is longer than {MAX_RESOURCE_CHARS} characters"
    if any(character.isspace() or not character.isprintable() for character in resource):
        return "it contains whitespace or control characters"
    try:
        parts = urlsplit(resource)
        # Reading the port checks that it is a number from 0 to 65535.
        _ = parts.port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "it is not an absolute http or https URL"
    if not parts.hostname:
        return "it has no host"
    if "#" in resource:
        return "it contains a fragment, which RFC 8707 forbids"
    return None


def _quote(value: str) -> str:
    if len(value) > MAX_QUOTED_CHARS:
        return repr(value[:MAX_QUOTED_CHARS] + "...")
    return repr(value)
