"""The bearer-token verifier's key handling: discovery, rotation, and limits on refetching.

The issuer here is an httpx2 mock transport, because these cases need an issuer whose keys change and
whose metadata lies, which the sandbox's authorization server does not do.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcp_avaya_workflows.access_tokens import (
    JWKS_CACHE_SECONDS,
    JWKS_REFETCH_SECONDS,
    JWKS_STALE_SECONDS,
    JwtTokenVerifier,
    metadata_urls,
)

ISSUER = "https://login.example.com/realms/mcp"
AUDIENCE = "https://mcp.example.com/mcp"
NOW = 1_900_000_000.0

pytestmark = pytest.mark.anyio


class FakeIssuer:
    """Serves RFC 8414 metadata and a JWKS that the test can rotate, counting each request."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, auto_kid=True)]
        self.metadata_issuer = ISSUER
        self.down = False
        self.requests: list[str] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request.url.path)
        if request.url.path == "/.well-known/oauth-authorization-server/realms/mcp":
            body = {"issuer": self.metadata_issuer, "jwks_uri": "https://login.example.com/jwks"}
            return httpx2.Response(200, json=body)
        if request.url.path == "/jwks" and self.down:
            return httpx2.Response(503)
        if request.url.path == "/jwks":
            return httpx2.Response(200, json={"keys": [key.as_dict(private=False) for key in self.keys]})
        return httpx2.Response(404)

    def token(self, key: RSAKey | None = None, *, typ: str | None = "at+jwt", **claims: Any) -> str:
        key = key or self.keys[0]
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 300, "scope": "workflows:read"}
        payload.update(claims)
        header = {"alg": "RS256", "kid": key.kid} | ({"typ": typ} if typ else {})
        return jwt.encode(header, payload, key)

    def jwks_fetches(self) -> int:
        return self.requests.count("/jwks")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(issuer: FakeIssuer, clock: Clock) -> Any:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(issuer.handler))
    verifier = JwtTokenVerifier(issuer=ISSUER, audience=AUDIENCE, http=http, clock=clock)
    yield verifier
    await verifier.aclose()


async def test_keys_are_discovered_from_the_issuer_metadata(verifier: JwtTokenVerifier, issuer: FakeIssuer) -> None:
    token = await verifier.verify_token(issuer.token())
    assert token is not None
    assert token.subject == "alice"
    assert token.scopes == ["workflows:read"]
    assert token.token == ""  # the raw token is not kept
    assert issuer.requests == ["/.well-known/oauth-authorization-server/realms/mcp", "/jwks"]


async def test_rotated_key_is_fetched_once(verifier: JwtTokenVerifier, issuer: FakeIssuer, clock: Clock) -> None:
    assert await verifier.verify_token(issuer.token()) is not None
    clock.now += JWKS_REFETCH_SECONDS + 1
    issuer.keys.append(RSAKey.generate_key(2048, auto_kid=True))
    new_key = issuer.keys[1]
    assert await verifier.verify_token(issuer.token(new_key)) is not None
    assert await verifier.verify_token(issuer.token(new_key)) is not None
    assert issuer.jwks_fetches() == 2


async def test_unknown_key_ids_do_not_flood_the_issuer(verifier: JwtTokenVerifier, issuer: FakeIssuer) -> None:
    assert await verifier.verify_token(issuer.token()) is not None
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    for _ in range(20):
        assert await verifier.verify_token(issuer.token(stranger)) is None
    # The first fetch was just now, so no unknown key ID may trigger another one yet.
    assert issuer.jwks_fetches() == 1


async def test_issuer_outage_keeps_the_last_good_keys(
    verifier: JwtTokenVerifier, issuer: FakeIssuer, clock: Clock
) -> None:
    assert await verifier.verify_token(issuer.token()) is not None
    issuer.down = True
    clock.now += JWKS_CACHE_SECONDS + 1
    for _ in range(50):
        assert await verifier.verify_token(issuer.token(exp=clock.now + 300)) is not None
    # One attempt when the cache aged, none more within the refetch interval.
    assert issuer.jwks_fetches() == 2
    clock.now += JWKS_STALE_SECONDS
    assert await verifier.verify_token(issuer.token(exp=clock.now + 300)) is None


async def test_issuer_down_from_the_start_is_not_hammered(verifier: JwtTokenVerifier, issuer: FakeIssuer) -> None:
    issuer.down = True
    for _ in range(50):
        assert await verifier.verify_token(issuer.token()) is None
    assert issuer.jwks_fetches() == 1


async def test_metadata_of_another_issuer_is_not_used(verifier: JwtTokenVerifier, issuer: FakeIssuer) -> None:
    issuer.metadata_issuer = "https://attacker.example.com"
    assert await verifier.verify_token(issuer.token()) is None
    assert issuer.jwks_fetches() == 0


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"aud": [AUDIENCE, "https://other.example.com"]}, True),
        ({"aud": AUDIENCE + "/"}, True),
        ({"aud": ["https://other.example.com"]}, False),
        ({"exp": NOW - 31}, False),
        ({"exp": NOW - 29}, True),  # within the clock leeway
        ({"exp": True}, False),
    ],
)
async def test_claims(verifier: JwtTokenVerifier, issuer: FakeIssuer, claims: dict[str, Any], accepted: bool) -> None:
    token = issuer.token(**claims)
    assert (await verifier.verify_token(token) is not None) is accepted, json.dumps(claims)


@pytest.mark.parametrize(("typ", "accepted"), [("at+jwt", True), ("JWT", True), (None, True), ("dpop+jwt", False)])
async def test_token_type(verifier: JwtTokenVerifier, issuer: FakeIssuer, typ: str | None, accepted: bool) -> None:
    assert (await verifier.verify_token(issuer.token(typ=typ)) is not None) is accepted


async def test_blank_subject_is_rejected(verifier: JwtTokenVerifier, issuer: FakeIssuer) -> None:
    assert await verifier.verify_token(issuer.token(sub="  ")) is None


async def test_scp_claim_gives_scopes(verifier: JwtTokenVerifier, issuer: FakeIssuer) -> None:
    token = await verifier.verify_token(issuer.token(scope=None, scp=["workflows:read", "workflows:start"]))
    assert token is not None
    assert token.scopes == ["workflows:read", "workflows:start"]


def test_metadata_urls_follow_rfc_8414_then_openid() -> None:
    assert metadata_urls("https://login.example.com/realms/mcp/") == [
        "https://login.example.com/.well-known/oauth-authorization-server/realms/mcp",
        "https://login.example.com/realms/mcp/.well-known/openid-configuration",
    ]
