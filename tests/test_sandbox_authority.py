"""Tests of the sandbox's authorization server for MCP clients, driven over real loopback HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet, KeySetSerialization, RSAKey
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.auth.utils import build_oauth_authorization_server_metadata_discovery_urls
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mcp_avaya_workflows.sandbox import (
    ALICE_CLIENT_ID,
    BOB_CLIENT_ID,
    ClientAuthority,
    RegisteredClient,
    SandboxState,
    running_sandbox,
)
from mcp_avaya_workflows.sandbox.tokens import InvalidTokenError

from .conftest import CLIENT_ID, PLANTED_SECRET, Sandbox

METADATA_PATH = "/.well-known/oauth-authorization-server/mcp-auth"
OPENID_CONFIGURATION_PATH = "/mcp-auth/.well-known/openid-configuration"
TOKEN_PATH = "/mcp-auth/token"
JWKS_PATH = "/mcp-auth/jwks"
AUTHORIZE_PATH = "/mcp-auth/authorize"
REALM_TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"
REALM_JWKS_PATH = "/auth/realms/avaya/protocol/openid-connect/certs"

# The MCP server's URL, sent as the RFC 8707 resource, which becomes the audience. Nothing listens there.
RESOURCE = "http://127.0.0.1:8000/mcp"
BOTH_SCOPES = "workflows:start workflows:read"
CLAIM_NAMES = {"iss", "sub", "aud", "client_id", "scope", "iat", "nbf", "exp", "jti"}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}
ALICE_SECRET = "alice-Secret-3d9f0b7e"
BOB_SECRET = "bob-Secret-8a2c4e6f"


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=sandbox.url, timeout=5) as client:
        yield client


def issuer_of(sandbox: Sandbox) -> str:
    return sandbox.url + "/mcp-auth"


def secret_of(sandbox: Sandbox, client_id: str) -> str:
    return sandbox.state.authority.client_secret(client_id)


def token_form(client_id: str, secret: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "resource": RESOURCE,
    } | extra


async def request_token(http: httpx2.AsyncClient, sandbox: Sandbox, client_id: str, **extra: str) -> httpx2.Response:
    response = await http.post(TOKEN_PATH, data=token_form(client_id, secret_of(sandbox, client_id), **extra))
    assert response.status_code == 200, response.text
    return response


async def decode_with_served_keys(http: httpx2.AsyncClient, token: str) -> jwt.Token:
    """Verify `token` against the authority's served JWKS and return it decoded."""
    jwks = (await http.get(JWKS_PATH)).json()
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])


# Metadata


@pytest.mark.anyio
async def test_metadata_fields(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    response = await http.get(METADATA_PATH)

    assert response.status_code == 200
    assert response.json() == {
        "issuer": issuer_of(sandbox),
        "authorization_endpoint": sandbox.url + AUTHORIZE_PATH,
        "token_endpoint": sandbox.url + TOKEN_PATH,
        "jwks_uri": sandbox.url + JWKS_PATH,
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["workflows:start", "workflows:read"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }


@pytest.mark.anyio
async def test_metadata_openid_path_same(http: httpx2.AsyncClient) -> None:
    oauth = await http.get(METADATA_PATH)
    openid = await http.get(OPENID_CONFIGURATION_PATH)

    assert openid.status_code == 200
    assert openid.json() == oauth.json()


@pytest.mark.anyio
async def test_metadata_found_by_mcp_sdk(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    issuer = issuer_of(sandbox)
    discovery_urls = build_oauth_authorization_server_metadata_discovery_urls(issuer, RESOURCE)

    response = await http.get(discovery_urls[0])

    assert response.status_code == 200
    metadata = OAuthMetadata.model_validate_json(response.content)
    assert str(metadata.issuer) == issuer
    assert str(metadata.token_endpoint) == sandbox.url + TOKEN_PATH


@pytest.mark.anyio
async def test_authorize_rejects_every_request(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    params = {"response_type": "code", "client_id": ALICE_CLIENT_ID, "redirect_uri": "http://127.0.0.1:9/cb"}
    response = await http.get(AUTHORIZE_PATH, params=params)

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_response_type"
    assert "client_credentials" in response.json()["error_description"]
    assert sandbox.url + TOKEN_PATH in response.json()["error_description"]
    assert "location" not in response.headers


# JWKS


@pytest.mark.anyio
async def test_jwks_public_key_only(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    response = await http.get(JWKS_PATH)

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA"
    assert keys[0]["alg"] == "RS256"
    assert keys[0]["use"] == "sig"
    assert keys[0]["kid"] == sandbox.state.authority.kid
    assert PRIVATE_JWK_MEMBERS.isdisjoint(keys[0])


# Token endpoint: grants


@pytest.mark.anyio
@pytest.mark.parametrize("client_id", [ALICE_CLIENT_ID, BOB_CLIENT_ID])
@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
async def test_token_grant_claims(http: httpx2.AsyncClient, sandbox: Sandbox, client_id: str, method: str) -> None:
    secret = secret_of(sandbox, client_id)
    before = int(time.time())
    if method == "client_secret_post":
        response = await http.post(TOKEN_PATH, data=token_form(client_id, secret))
    else:
        form = {"grant_type": "client_credentials", "resource": RESOURCE}
        response = await http.post(TOKEN_PATH, data=form, auth=httpx2.BasicAuth(client_id, secret))
    after = int(time.time())

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == BOTH_SCOPES

    token = await decode_with_served_keys(http, body["access_token"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == sandbox.state.authority.kid
    assert set(token.claims) == CLAIM_NAMES
    assert token.claims["iss"] == issuer_of(sandbox)
    assert token.claims["sub"] == client_id
    assert token.claims["aud"] == RESOURCE
    assert token.claims["client_id"] == client_id
    assert token.claims["scope"] == BOTH_SCOPES
    assert before <= token.claims["iat"] <= after
    assert token.claims["nbf"] == token.claims["iat"]
    assert token.claims["exp"] == token.claims["iat"] + 300
    assert len(token.claims["jti"]) == 32


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("workflows:read", "workflows:read"),
        ("workflows:start", "workflows:start"),
        ("workflows:read workflows:start", "workflows:read workflows:start"),
        ("workflows:read workflows:read", "workflows:read"),
        ("", BOTH_SCOPES),
        ("   ", BOTH_SCOPES),
    ],
)
async def test_token_scope_granted(http: httpx2.AsyncClient, sandbox: Sandbox, requested: str, granted: str) -> None:
    response = await request_token(http, sandbox, ALICE_CLIENT_ID, scope=requested)

    assert response.json()["scope"] == granted
    token = await decode_with_served_keys(http, response.json()["access_token"])
    assert token.claims["scope"] == granted


@pytest.mark.anyio
async def test_token_audience_is_resource(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    resource = "https://mcp.example.com:8443/tenant-a/mcp?region=eu"
    response = await request_token(http, sandbox, BOB_CLIENT_ID, resource=resource)

    token = await decode_with_served_keys(http, response.json()["access_token"])
    assert token.claims["aud"] == resource


@pytest.mark.anyio
async def test_tokens_distinct_per_grant(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    tokens = []
    for client_id in (ALICE_CLIENT_ID, ALICE_CLIENT_ID, BOB_CLIENT_ID):
        response = await request_token(http, sandbox, client_id)
        tokens.append(await decode_with_served_keys(http, response.json()["access_token"]))

    assert len({token.claims["jti"] for token in tokens}) == 3
    assert [token.claims["sub"] for token in tokens] == [ALICE_CLIENT_ID, ALICE_CLIENT_ID, BOB_CLIENT_ID]


@pytest.mark.anyio
async def test_token_request_logged(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    await request_token(http, sandbox, BOB_CLIENT_ID)

    entry = sandbox.state.requests[-1]
    assert entry.path == TOKEN_PATH
    assert entry.method == "POST"
    assert entry.status == 200
    assert entry.client_id == BOB_CLIENT_ID
    assert entry.body is None
    # Requests to the authority are not requests to Avaya's token endpoint.
    assert entry.kind == "other"
    assert sandbox.state.count("token") == 0


# Token endpoint: errors


def basic_header(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


ERROR_CASES: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (case id, request changes, status, error, text the description must contain)
    ("grant_type missing", {"drop": ["grant_type"]}, 400, "invalid_request", "grant_type"),
    ("grant_type password", {"form": {"grant_type": "password"}}, 400, "unsupported_grant_type", "'password'"),
    ("secret wrong", {"form": {"client_secret": "wrong"}}, 401, "invalid_client", "client_secret"),
    ("client unknown", {"form": {"client_id": "mcp-carol"}}, 401, "invalid_client", "client_id"),
    ("secret missing", {"drop": ["client_secret"]}, 401, "invalid_client", "client_secret"),
    ("credentials missing", {"drop": ["client_id", "client_secret"]}, 401, "invalid_client", "client_id"),
    ("basic secret wrong", {"basic": ("mcp-alice", "wrong")}, 401, "invalid_client", "client_secret"),
    ("basic malformed", {"authorization": "Basic !!not-base64!!"}, 401, "invalid_client", "Basic"),
    ("basic without colon", {"authorization": "Basic bWNwLWFsaWNl"}, 401, "invalid_client", "Basic"),
    (
        "basic and form secret",
        {"basic": ("mcp-alice", None), "keep_secret": True},
        400,
        "invalid_request",
        "one method",
    ),
    (
        "basic and other id",
        {"basic": ("mcp-alice", None), "form": {"client_id": "mcp-bob"}},
        400,
        "invalid_request",
        "client_id",
    ),
    (
        "scope unknown",
        {"form": {"scope": "workflows:read workflows:delete"}},
        400,
        "invalid_scope",
        "'workflows:delete'",
    ),
    ("scope of realm", {"form": {"scope": "workflows:execute"}}, 400, "invalid_scope", "scope"),
    ("scope repeated", {"form": {"scope": ["workflows:read", "workflows:start"]}}, 400, "invalid_request", "scope"),
    ("resource missing", {"drop": ["resource"]}, 400, "invalid_target", "resource"),
    ("resource empty", {"form": {"resource": ""}}, 400, "invalid_target", "resource"),
    ("resource relative", {"form": {"resource": "/mcp"}}, 400, "invalid_target", "absolute"),
    ("resource urn", {"form": {"resource": "urn:example:mcp"}}, 400, "invalid_target", "absolute"),
    ("resource ftp", {"form": {"resource": "ftp://127.0.0.1/mcp"}}, 400, "invalid_target", "http"),
    ("resource no host", {"form": {"resource": "http:///mcp"}}, 400, "invalid_target", "host"),
    ("resource bad port", {"form": {"resource": "http://127.0.0.1:99999/mcp"}}, 400, "invalid_target", "URL"),
    ("resource fragment", {"form": {"resource": RESOURCE + "#tools"}}, 400, "invalid_target", "fragment"),
    ("resource space", {"form": {"resource": "http://127.0.0.1:8000/m cp"}}, 400, "invalid_target", "whitespace"),
    ("resource too long", {"form": {"resource": RESOURCE + "/" + "a" * 2048}}, 400, "invalid_target", "2048"),
    ("resource repeated", {"form": {"resource": [RESOURCE, RESOURCE + "2"]}}, 400, "invalid_target", "once"),
    ("json body", {"json": True}, 400, "invalid_request", "form-encoded"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("changes", "status", "error", "mentions"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
async def test_token_error(
    http: httpx2.AsyncClient, sandbox: Sandbox, changes: dict[str, Any], status: int, error: str, mentions: str
) -> None:
    alice_secret = secret_of(sandbox, ALICE_CLIENT_ID)
    form: dict[str, Any] = token_form(ALICE_CLIENT_ID, alice_secret)
    headers: dict[str, str] = {}
    if "basic" in changes:
        basic_id, basic_secret = changes["basic"]
        headers["Authorization"] = basic_header(basic_id, basic_secret or alice_secret)
        form.pop("client_id")
        if not changes.get("keep_secret"):
            form.pop("client_secret")
    if "authorization" in changes:
        headers["Authorization"] = changes["authorization"]
        form.pop("client_id")
        form.pop("client_secret")
    for name in changes.get("drop", []):
        form.pop(name)
    form.update(changes.get("form", {}))

    if changes.get("json"):
        response = await http.post(TOKEN_PATH, json=form, headers=headers)
    else:
        response = await http.post(TOKEN_PATH, data=form, headers=headers)

    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert mentions in body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    assert alice_secret not in response.text
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="mcp-auth"'
    else:
        assert "www-authenticate" not in response.headers


@pytest.mark.anyio
async def test_token_unknown_and_wrong_same_error(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    unknown = await http.post(TOKEN_PATH, data=token_form("mcp-carol", secret_of(sandbox, ALICE_CLIENT_ID)))
    wrong = await http.post(TOKEN_PATH, data=token_form(ALICE_CLIENT_ID, "wrong-secret"))

    assert unknown.status_code == 401
    assert unknown.json() == wrong.json()


@pytest.mark.anyio
async def test_token_get_not_allowed(http: httpx2.AsyncClient) -> None:
    response = await http.get(TOKEN_PATH)

    assert response.status_code == 405


# Separation from the Avaya realm


async def fetch_realm_token(http: httpx2.AsyncClient) -> str:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": PLANTED_SECRET}
    response = await http.post(REALM_TOKEN_PATH, data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.mark.anyio
async def test_issuer_and_key_differ_from_realm(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    realm_jwks = (await http.get(REALM_JWKS_PATH)).json()
    realm_token = jwt.decode(await fetch_realm_token(http), KeySet.import_key_set(realm_jwks))
    realm_key = realm_jwks["keys"][0]
    authority_key = (await http.get(JWKS_PATH)).json()["keys"][0]
    metadata = (await http.get(METADATA_PATH)).json()

    assert metadata["issuer"] != realm_token.claims["iss"]
    assert metadata["jwks_uri"] != sandbox.url + REALM_JWKS_PATH
    assert metadata["token_endpoint"] != sandbox.url + REALM_TOKEN_PATH
    assert authority_key["kid"] != realm_key["kid"]
    assert authority_key["n"] != realm_key["n"]


@pytest.mark.anyio
async def test_realm_token_fails_authority_jwks(http: httpx2.AsyncClient) -> None:
    realm_token = await fetch_realm_token(http)
    authority_jwk = (await http.get(JWKS_PATH)).json()["keys"][0]

    # A single key skips the kid lookup, so only the signature check can reject the token.
    with pytest.raises(BadSignatureError):
        jwt.decode(realm_token, RSAKey.import_key(authority_jwk), algorithms=["RS256"])
    with pytest.raises(JoseError):
        jwt.decode(realm_token, KeySet.import_key_set({"keys": [authority_jwk]}), algorithms=["RS256"])


@pytest.mark.anyio
async def test_authority_token_fails_realm_jwks(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    response = await request_token(http, sandbox, ALICE_CLIENT_ID)
    token = response.json()["access_token"]
    realm_jwk = (await http.get(REALM_JWKS_PATH)).json()["keys"][0]

    with pytest.raises(BadSignatureError):
        jwt.decode(token, RSAKey.import_key(realm_jwk), algorithms=["RS256"])
    with pytest.raises(JoseError):
        jwt.decode(token, KeySet.import_key_set({"keys": [realm_jwk]}), algorithms=["RS256"])
    with pytest.raises(InvalidTokenError):
        sandbox.state.tokens.verify(token)


# Python API


@pytest.mark.anyio
async def test_issue_verifies_against_served_jwks(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    authority = sandbox.state.authority
    issuer = authority.issuer_for(sandbox.url + "/")

    value = authority.issue("user-42", audience=RESOURCE, scopes=["workflows:read"], issuer=issuer)

    token = await decode_with_served_keys(http, value)
    assert token.header["typ"] == "at+jwt"
    assert set(token.claims) == CLAIM_NAMES
    assert token.claims["iss"] == issuer_of(sandbox)
    assert token.claims["sub"] == "user-42"
    assert token.claims["aud"] == RESOURCE
    assert token.claims["client_id"] == "sandbox-mcp-client"
    assert token.claims["scope"] == "workflows:read"
    assert token.claims["exp"] == token.claims["iat"] + 300


def test_issue_defaults_fallback_issuer() -> None:
    authority = ClientAuthority()

    value = authority.issue("user-1", audience=RESOURCE, scopes=BOTH_SCOPES)

    claims = jwt.decode(value, KeySet.import_key_set(authority.jwks())).claims
    assert claims["iss"] == "http://sandbox.invalid/mcp-auth"
    assert claims["scope"] == BOTH_SCOPES


def test_issue_options_and_extra_claims() -> None:
    authority = ClientAuthority()
    extra = {"act": {"sub": "agent-7"}, "aud": [RESOURCE, "https://other.example/mcp"]}

    value = authority.issue(
        "user-2",
        audience=RESOURCE,
        scopes=[],
        client_id="ide-agent",
        expires_in=-60,
        extra_claims=extra,
    )

    token = jwt.decode(value, KeySet.import_key_set(authority.jwks()))
    assert "scope" not in token.claims
    assert token.claims["client_id"] == "ide-agent"
    assert token.claims["act"] == {"sub": "agent-7"}
    assert token.claims["aud"] == [RESOURCE, "https://other.example/mcp"]
    assert token.claims["exp"] == token.claims["iat"] - 60
    with pytest.raises(ExpiredTokenError):
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(token.claims)


def test_issue_any_scope_token() -> None:
    authority = ClientAuthority()

    value = authority.issue("user-3", audience=RESOURCE, scopes="workflows:admin  workflows:read workflows:admin")

    claims = jwt.decode(value, KeySet.import_key_set(authority.jwks())).claims
    assert claims["scope"] == "workflows:admin workflows:read"


@pytest.mark.parametrize(
    ("arguments", "mentions"),
    [
        ({"subject": ""}, "subject"),
        ({"audience": ""}, "audience"),
        ({"client_id": ""}, "client_id"),
        ({"scopes": ["workflows read"]}, "scope token"),
        ({"scopes": ['say"hi']}, "scope token"),
        ({"scopes": [""]}, "scope token"),
    ],
)
def test_issue_rejects_bad_arguments(arguments: dict[str, Any], mentions: str) -> None:
    authority = ClientAuthority()
    call: dict[str, Any] = {"subject": "user-4", "audience": RESOURCE, "scopes": ["workflows:read"]} | arguments
    subject = call.pop("subject")

    with pytest.raises(ValueError, match=mentions):
        authority.issue(subject, **call)


# Configuration


def test_demo_clients_random_secrets() -> None:
    first, second = ClientAuthority(), ClientAuthority()

    assert list(first.clients) == [ALICE_CLIENT_ID, BOB_CLIENT_ID]
    assert first.clients[ALICE_CLIENT_ID].subject == ALICE_CLIENT_ID
    assert first.clients[BOB_CLIENT_ID].subject == BOB_CLIENT_ID
    secrets = {
        first.client_secret(ALICE_CLIENT_ID),
        first.client_secret(BOB_CLIENT_ID),
        second.client_secret(ALICE_CLIENT_ID),
        second.client_secret(BOB_CLIENT_ID),
    }
    assert len(secrets) == 4
    assert all(len(secret) >= 32 for secret in secrets)
    assert first.kid != second.kid
    assert first.jwks() != second.jwks()


def test_registered_client_repr_hides_secret() -> None:
    authority = ClientAuthority({ALICE_CLIENT_ID: ALICE_SECRET})

    assert ALICE_SECRET not in repr(authority.clients)


def test_client_secret_unknown_client() -> None:
    with pytest.raises(KeyError, match="mcp-carol"):
        ClientAuthority().client_secret("mcp-carol")


@pytest.mark.parametrize(
    ("arguments", "mentions"),
    [
        ({"client_secrets": {"mcp-carol": "x"}}, "'mcp-carol'.*extra_clients"),
        ({"client_secrets": {ALICE_CLIENT_ID: ""}}, "secret of client 'mcp-alice'"),
        ({"extra_clients": [RegisteredClient(BOB_CLIENT_ID, "x", "bob")]}, "repeats the client id 'mcp-bob'"),
        ({"extra_clients": [RegisteredClient("ci-bot", "x", "")]}, "subject of client 'ci-bot'"),
        ({"extra_clients": [RegisteredClient("", "x", "someone")]}, "client_id"),
        ({"token_ttl_seconds": 0}, "token_ttl_seconds"),
    ],
)
def test_authority_rejects_bad_configuration(arguments: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ValueError, match=mentions):
        ClientAuthority(**arguments)


@pytest.mark.anyio
async def test_configured_clients_over_http() -> None:
    authority = ClientAuthority(
        {ALICE_CLIENT_ID: ALICE_SECRET, BOB_CLIENT_ID: BOB_SECRET},
        extra_clients=[RegisteredClient("ci-bot", "ci-bot-secret", "user-7")],
        token_ttl_seconds=60,
    )
    state = SandboxState(time_scale=0, authority=authority)
    assert state.authority is authority

    async with running_sandbox(state) as url, httpx2.AsyncClient(base_url=url, timeout=5) as client:
        grants = {
            client_id: await client.post(TOKEN_PATH, data=token_form(client_id, secret))
            for client_id, secret in [
                (ALICE_CLIENT_ID, ALICE_SECRET),
                (BOB_CLIENT_ID, BOB_SECRET),
                ("ci-bot", "ci-bot-secret"),
            ]
        }
        claims = {
            client_id: (await decode_with_served_keys(client, response.json()["access_token"])).claims
            for client_id, response in grants.items()
        }

    assert all(response.json()["expires_in"] == 60 for response in grants.values())
    assert claims[ALICE_CLIENT_ID]["sub"] == ALICE_CLIENT_ID
    assert claims[BOB_CLIENT_ID]["sub"] == BOB_CLIENT_ID
    assert claims["ci-bot"]["sub"] == "user-7"
    assert claims["ci-bot"]["client_id"] == "ci-bot"
    assert claims["ci-bot"]["exp"] == claims["ci-bot"]["iat"] + 60


def test_each_sandbox_own_authority() -> None:
    first, second = SandboxState(), SandboxState()

    assert first.authority is first.authority
    assert first.authority.kid != second.authority.kid
    assert first.authority.kid != first.tokens.jwks()["keys"][0]["kid"]


# The MCP SDK's client-credentials flow against the authority


class MemoryTokenStorage:
    """Token storage for the SDK's OAuth provider that keeps everything in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class AuthorityTokenVerifier:
    """A bearer-token verifier for the SDK's auth middleware that trusts the authority's JWKS, issuer and audience."""

    def __init__(self, jwks: KeySetSerialization, issuer: str, audience: str) -> None:
        self.keys = KeySet.import_key_set(jwks)
        self.registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            decoded = jwt.decode(token, self.keys, algorithms=["RS256"])
            self.registry.validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        claims = decoded.claims
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=claims.get("scope", "").split(),
            expires_at=claims["exp"],
            resource=claims["aud"],
            subject=claims["sub"],
        )


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    user = scope["user"]
    assert isinstance(user, AuthenticatedUser)
    body = {"sub": user.access_token.subject, "client_id": user.access_token.client_id, "scopes": user.scopes}
    await JSONResponse(body)(scope, receive, send)


def protected_resource(verifier: AuthorityTokenVerifier, resource: str, issuer: str) -> Starlette:
    """Build a resource server from the MCP SDK's auth components that requires the read scope at `/mcp`."""
    resource_url = AnyHttpUrl(resource)
    metadata_url = build_resource_metadata_url(resource_url)
    routes = [
        *create_protected_resource_routes(resource_url, [AnyHttpUrl(issuer)], ["workflows:start", "workflows:read"]),
        Route("/mcp", RequireAuthMiddleware(whoami, ["workflows:read"], metadata_url)),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier))]
    )


@pytest.mark.anyio
@pytest.mark.parametrize("client_id", [ALICE_CLIENT_ID, BOB_CLIENT_ID])
async def test_mcp_sdk_client_credentials(sandbox: Sandbox, client_id: str) -> None:
    # The resource server runs in-process under a host name that is never resolved. The authority is the real sandbox.
    resource = "http://mcp-server.test/mcp"
    issuer = issuer_of(sandbox)
    verifier = AuthorityTokenVerifier(sandbox.state.authority.jwks(), issuer, resource)
    app = protected_resource(verifier, resource, issuer)
    storage = MemoryTokenStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=resource,
        storage=storage,
        client_id=client_id,
        client_secret=secret_of(sandbox, client_id),
        issuer=issuer,
    )
    mounts = {"http://mcp-server.test": httpx2.ASGITransport(app)}

    async with httpx2.AsyncClient(auth=provider, mounts=mounts, timeout=5) as client:
        response = await client.get(resource)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "sub": client_id,
        "client_id": client_id,
        "scopes": ["workflows:start", "workflows:read"],
    }
    assert storage.tokens is not None
    assert storage.tokens.scope == BOTH_SCOPES
    token_requests = [entry for entry in sandbox.state.requests if entry.path == TOKEN_PATH]
    assert [(entry.status, entry.client_id) for entry in token_requests] == [(200, client_id)]
