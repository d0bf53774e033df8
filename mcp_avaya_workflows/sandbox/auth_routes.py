"""The Keycloak realm endpoints: the client-credentials token endpoint and the JWKS."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .injection import RequestFaults
from .paths import JWKS_PATH, REALM_PREFIX, TOKEN_PATH
from .recording import exchange_of
from .responses import NO_STORE_HEADERS, OAuthError
from .state import SandboxState
from .tokens import DEFAULT_SCOPE

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# Keycloak's error_description both for an unknown client and for wrong credentials, so the response
# does not reveal which of the two failed.
INVALID_CLIENT_DESCRIPTION = "Invalid client or Invalid client credentials"


@dataclass(frozen=True)
class ClientCredentials:
    """The client id and secret of a token request, from HTTP Basic or from the form."""

    client_id: str | None
    client_secret: str | None
    from_basic: bool


class RealmEndpoints:
    """Handlers for the token and JWKS endpoints of one sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """Return the Starlette routes of the realm."""
        return [
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
        ]

    async def token(self, request: Request) -> Response:
        """Issue an access token for a client-credentials grant."""
        faults = RequestFaults(self.state, request, "token")
        interrupted = await faults.take(None)
        if interrupted is not None:
            return interrupted
        form, repeated = await read_form(request)
        exchange_of(request).client_id = _claimed_client_id(request, form)
        return await faults.respond(lambda: self._grant(request, form, repeated))

    async def jwks(self, request: Request) -> Response:
        """Serve the public key that signs this sandbox's tokens."""
        faults = RequestFaults(self.state, request, "jwks")
        interrupted = await faults.take(None)
        if interrupted is not None:
            return interrupted
        return await faults.respond(lambda: JSONResponse(self.state.tokens.jwks()))

    def _grant(self, request: Request, form: dict[str, str], repeated: frozenset[str]) -> Response:
        try:
            _check_grant_type(form)
            client_id = self._authenticate(_read_credentials(request, form))
            _check_not_repeated(repeated)
        except OAuthError as exc:
            return exc.to_response()
        return self._token_response(request, client_id, form.get("scope") or DEFAULT_SCOPE)

    def _authenticate(self, credentials: ClientCredentials) -> str:
        if not credentials.client_id:
            raise OAuthError(400, "invalid_request", "Missing parameter: client_id")
        challenge = {"WWW-Authenticate": 'Basic realm="avaya"'} if credentials.from_basic else None
        secret = credentials.client_secret
        if secret is None or not self.state.check_client(credentials.client_id, secret):
            raise OAuthError(401, "invalid_client", INVALID_CLIENT_DESCRIPTION, challenge)
        return credentials.client_id

    def _token_response(self, request: Request, client_id: str, scope: str) -> Response:
        issuer = str(request.base_url).rstrip("/") + REALM_PREFIX
        issued = self.state.issue_token(client_id, scope, issuer)
        body = {
            "access_token": issued.value,
            "expires_in": self.state.token_ttl_seconds,
            "refresh_expires_in": 0,
            "token_type": self.state.token_type,
            # Keycloak includes this field in its token responses.
            "not-before-policy": 0,
            "scope": scope,
        }
        return JSONResponse(body, headers=NO_STORE_HEADERS)


async def read_form(request: Request) -> tuple[dict[str, str], frozenset[str]]:
    """Return the first value of each form parameter, and the names of parameters sent more than once."""
    # RFC 6749 section 4.4.2 puts the parameters in a form-encoded body. Any other body is read as
    # empty, so the request fails on the missing grant_type.
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        return {}, frozenset()
    raw = (await request.body()).decode("utf-8", errors="replace")
    form: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in form:
            repeated.add(name)
        form.setdefault(name, value)
    return form, frozenset(repeated)


def _check_not_repeated(repeated: frozenset[str]) -> None:
    # RFC 6749 section 3.2 forbids sending a parameter more than once. Keycloak's token endpoint checks
    # this after the grant type and the client, and returns this error and description.
    if repeated:
        raise OAuthError(400, "invalid_request", "duplicated parameter")


def _claimed_client_id(request: Request, form: dict[str, str]) -> str | None:
    """Return the client id the request names, for the request log, even if its credentials are malformed."""
    try:
        basic = parse_basic_auth(request.headers.get("authorization"))
    except OAuthError:
        basic = None
    return basic[0] if basic else form.get("client_id") or None


def _read_credentials(request: Request, form: dict[str, str]) -> ClientCredentials:
    basic = parse_basic_auth(request.headers.get("authorization"))
    if basic is None:
        return ClientCredentials(form.get("client_id"), form.get("client_secret"), from_basic=False)
    basic_id, basic_secret = basic
    form_id = form.get("client_id")
    if form_id and form_id != basic_id:
        raise OAuthError(400, "invalid_request", "client_id in the form differs from the Basic credentials")
    return ClientCredentials(basic_id, basic_secret, from_basic=True)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Split an HTTP Basic header into client id and secret, form-decoding each as RFC 6749 section 2.3.1 requires."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError(401, "invalid_client", "Malformed Basic authorization header") from exc
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise OAuthError(401, "invalid_client", "Malformed Basic authorization header")
    return unquote_plus(client_id), unquote_plus(secret)


def _check_grant_type(form: dict[str, str]) -> None:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError(400, "invalid_request", "Missing form parameter: grant_type")
    if grant_type != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}")
