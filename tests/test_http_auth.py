"""The HTTP transport as an OAuth resource server, and its HTTP-level guards.

The sandbox plays both sides: Avaya's realm, which the server gets its own
upstream token from, and a separate authorization server that issues the MCP
clients' tokens. The server runs in uvicorn on a loopback port and real MCP
clients connect to it over streamable HTTP in both protocol eras.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import OctKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.applications import Starlette

from mcp_avaya_workflows.access_tokens import JwtTokenVerifier
from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES, EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.http_transport import bind_socket, build_http_app, endpoint_url
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import READ_SCOPE, START_SCOPE, ClientAuthority
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.settings import Settings
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, ERAS, PLANTED_SECRET, Sandbox, capture_logs, make_settings

BOTH_SCOPES = [START_SCOPE, READ_SCOPE]
ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


class _InLoopServer(uvicorn.Server):
    """uvicorn inside the test's event loop, leaving signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Starlette, sock: Any) -> AsyncIterator[None]:
    server = _InLoopServer(uvicorn.Config(app, log_level="warning", lifespan="on", http="h11", log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the HTTP server stopped before it started"
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@dataclass
class AuthServer:
    sandbox: Sandbox
    url: str
    issuer: str
    settings: Settings
    audit_path: Path

    @property
    def authority(self) -> ClientAuthority:
        return self.sandbox.state.authority

    def token(self, subject: str = "alice", *, scopes: list[str] | None = None, **options: Any) -> str:
        options.setdefault("audience", self.url)
        options.setdefault("issuer", self.issuer)
        return self.authority.issue(subject, scopes=BOTH_SCOPES if scopes is None else scopes, **options)

    @contextlib.asynccontextmanager
    async def client(self, token: str, era: str) -> AsyncIterator[Client]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(self.url, http_client=http), mode=era) as client:
            yield client

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture
async def auth_server(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[AuthServer]:
    sock = bind_socket("127.0.0.1", 0)
    url = endpoint_url(sock)
    issuer = ClientAuthority.issuer_for(sandbox.url)
    audit_path = tmp_path / "audit.jsonl"
    settings = make_settings(
        sandbox.url, transport="http", public_url=url, auth_issuer=issuer, audit_log=str(audit_path)
    )
    verifier = JwtTokenVerifier(issuer=issuer, audience=url)
    app = build_http_app(build_server(settings), settings, verifier=verifier)
    with sock:
        async with serving(app, sock):
            yield AuthServer(sandbox, url, issuer, settings, audit_path)
    await verifier.aclose()


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _text(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.anyio
async def test_unauthenticated_request_gets_401_pointing_to_resource_metadata(auth_server: AuthServer) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(auth_server.url, json=INITIALIZE, headers={"Accept": ACCEPT})
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        base = auth_server.url.removesuffix("/mcp")
        metadata_url = f"{base}/.well-known/oauth-protected-resource/mcp"
        assert challenge.startswith("Bearer ")
        assert f'resource_metadata="{metadata_url}"' in challenge
        metadata = (await http.get(metadata_url)).json()
    assert metadata["resource"] == auth_server.url
    assert metadata["authorization_servers"] == [auth_server.issuer]
    assert set(metadata["scopes_supported"]) == {START_SCOPE, READ_SCOPE}


def _other_key_token(server: AuthServer) -> str:
    return ClientAuthority().issue("alice", audience=server.url, scopes=BOTH_SCOPES, issuer=server.issuer)


def _hs256_token(server: AuthServer) -> str:
    # An attacker with the public key uses it as an HMAC secret (the classic algorithm confusion).
    secret = json.dumps(server.authority.jwks()).encode()
    claims = {"iss": server.issuer, "aud": server.url, "sub": "alice", "exp": 4_000_000_000, "scope": START_SCOPE}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))


def _unsigned_token(server: AuthServer) -> str:
    valid = server.token()
    payload = valid.split(".")[1]
    return f"eyJhbGciOiJub25lIn0.{payload}."


REJECTED_TOKENS = {
    "another audience": lambda s: s.token(audience="https://other.example.com/mcp"),
    "another issuer": lambda s: s.token(issuer="https://login.example.com/mcp-auth"),
    "expired": lambda s: s.token(expires_in=-120),
    "not yet valid": lambda s: s.token(extra_claims={"nbf": 4_000_000_000}),
    "no subject": lambda s: s.token(extra_claims={"sub": ""}),
    "signed by another key": _other_key_token,
    "HS256 with the public key": _hs256_token,
    "unsigned": _unsigned_token,
    "garbage": lambda s: "not-a-jwt",
}


@pytest.mark.parametrize("case", list(REJECTED_TOKENS))
@pytest.mark.anyio
async def test_bad_tokens_are_refused(auth_server: AuthServer, case: str) -> None:
    token = REJECTED_TOKENS[case](auth_server)
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            auth_server.url, json=INITIALIZE, headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401, case
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.mark.anyio
async def test_token_for_another_audience_fails_the_mcp_client(auth_server: AuthServer, era: str) -> None:
    token = auth_server.token(audience="https://other.example.com/mcp")
    logs = io.StringIO()
    with capture_logs(logs, Redactor()), pytest.raises(Exception):  # noqa: PT011, B017 - the SDK wraps the 401
        async with auth_server.client(token, era) as client:
            await client.list_tools()
    assert "auth.token_rejected reason=audience" in logs.getvalue()
    assert not [r for r in auth_server.sandbox.state.requests if r.kind == "start"]


@pytest.mark.anyio
async def test_valid_token_starts_and_follows_a_workflow(auth_server: AuthServer, era: str) -> None:
    async with auth_server.client(auth_server.token(), era) as client:
        started = await client.call_tool(
            START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
        )
        assert not started.is_error, _text(started)
        assert started.structured_content is not None
        status = await client.call_tool(
            STATUS_TOOL, {"session_id": started.structured_content["session_id"], "wait_seconds": 10}
        )
    assert not status.is_error, _text(status)
    assert status.structured_content is not None
    assert status.structured_content["terminal"] is True
    principals = {record["principal"] for record in auth_server.audit()}
    assert principals == {"oauth:" + json.dumps([auth_server.issuer, "alice"], separators=(",", ":"))}


@pytest.mark.anyio
async def test_read_scope_alone_cannot_start(auth_server: AuthServer, era: str) -> None:
    async with auth_server.client(auth_server.token(scopes=[READ_SCOPE]), era) as client:
        result = await client.call_tool(
            START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
        )
    assert result.is_error
    assert START_SCOPE in _text(result)
    assert not [r for r in auth_server.sandbox.state.requests if r.kind == "start"]
    assert auth_server.audit()[-1]["outcome"] == "forbidden"


@pytest.mark.anyio
async def test_start_scope_alone_cannot_read(auth_server: AuthServer, era: str) -> None:
    async with auth_server.client(auth_server.token(), era) as client:
        started = await client.call_tool(
            START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
        )
    assert started.structured_content is not None
    async with auth_server.client(auth_server.token(scopes=[START_SCOPE]), era) as client:
        result = await client.call_tool(STATUS_TOOL, {"session_id": started.structured_content["session_id"]})
    assert result.is_error
    assert READ_SCOPE in _text(result)


@pytest.mark.anyio
async def test_handle_of_another_principal_is_not_found(auth_server: AuthServer, era: str) -> None:
    async with auth_server.client(auth_server.token("alice"), era) as alice:
        started = await alice.call_tool(
            START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
        )
    assert started.structured_content is not None
    handle = started.structured_content["session_id"]
    async with auth_server.client(auth_server.token("bob"), era) as bob:
        foreign = await bob.call_tool(STATUS_TOOL, {"session_id": handle})
    assert foreign.is_error
    assert "not found" in _text(foreign).lower()
    # The principal is the issuer and the subject: another client application of the same user may read it.
    same_user = auth_server.token("alice", client_id="another-app")
    async with auth_server.client(same_user, era) as other_app:
        own = await other_app.call_tool(STATUS_TOOL, {"session_id": handle})
    assert not own.is_error, _text(own)


@pytest.mark.anyio
async def test_client_token_is_never_forwarded_or_logged(auth_server: AuthServer) -> None:
    token = auth_server.token()
    logs = io.StringIO()
    with capture_logs(logs, Redactor()):
        async with auth_server.client(token, "2026-07-28") as client:
            started = await client.call_tool(
                START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
            )
            assert started.structured_content is not None
            await client.call_tool(STATUS_TOOL, {"session_id": started.structured_content["session_id"]})
    upstream = [r for r in auth_server.sandbox.state.requests if r.kind in ("start", "status")]
    assert upstream
    # Every upstream call carried the server's own Avaya token, which names the server's client ID.
    assert {(r.client_id, r.status) for r in upstream} <= {(CLIENT_ID, 201), (CLIENT_ID, 200)}
    for text in (logs.getvalue(), auth_server.audit_path.read_text()):
        assert token not in text
        assert token.split(".")[2] not in text
        assert PLANTED_SECRET not in text


@pytest.mark.anyio
async def test_health_endpoints_need_no_token(auth_server: AuthServer) -> None:
    base = auth_server.url.removesuffix("/mcp")
    async with httpx2.AsyncClient() as http:
        assert (await http.get(base + "/healthz")).status_code == 200
        ready = await http.get(base + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
