"""Two replicas behind one URL: any replica serves any request, with no sticky sessions.

Two `serve --transport http` processes share the handle keys, the request-state keys and the server name,
as a Kubernetes Deployment's pods do, and talk to one sandbox. Both accept tokens from the sandbox's
authorization server for the same public URL. A client can start a workflow on one replica and read it
on the other, and answer on one replica a confirmation question the other pending.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from cryptography.fernet import Fernet
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ElicitRequest, ElicitResult, InputRequiredResult

from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES, EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.sandbox import READ_SCOPE, SANDBOX_CATALOG, START_SCOPE, ClientAuthority
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, PLANTED_SECRET, Sandbox
from .test_transports import HttpServer, server_env

# The URL a load balancer would publish for both replicas; tokens name it as their audience.
PUBLIC_URL = "http://127.0.0.1:8443/mcp"
MODERN = "2026-07-28"


class Replicas:
    def __init__(self, sandbox: Sandbox, servers: list[HttpServer]) -> None:
        self.sandbox = sandbox
        self.servers = servers
        self.issuer = ClientAuthority.issuer_for(sandbox.url)

    def token(self, subject: str = "alice") -> str:
        return self.sandbox.state.authority.issue(
            subject, audience=PUBLIC_URL, scopes=[START_SCOPE, READ_SCOPE], issuer=self.issuer
        )

    @contextlib.asynccontextmanager
    async def client(
        self, index: int, era: str = MODERN, subject: str = "alice", **options: Any
    ) -> AsyncIterator[Client]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {self.token(subject)}"})
        transport = streamable_http_client(self.servers[index].url, http_client=http)
        async with http, Client(transport, mode=era, **options) as client:
            yield client


@pytest.fixture
async def replicas(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Replicas]:
    shared = {
        "AVAYA_WORKFLOWS_INFINITY_URL": sandbox.url,
        "AVAYA_WORKFLOWS_CLIENT_ID": CLIENT_ID,
        "AVAYA_WORKFLOWS_CLIENT_SECRET": PLANTED_SECRET,
        "AVAYA_WORKFLOWS_CATALOG": str(SANDBOX_CATALOG),
        "AVAYA_WORKFLOWS_PUBLIC_URL": PUBLIC_URL,
        "AVAYA_WORKFLOWS_AUTH_ISSUER": ClientAuthority.issuer_for(sandbox.url),
        "AVAYA_WORKFLOWS_HANDLE_KEYS": Fernet.generate_key().decode(),
        "AVAYA_WORKFLOWS_REQUEST_STATE_KEYS": secrets.token_urlsafe(32),
    }
    servers: list[HttpServer] = []
    try:
        for index in range(2):
            folder = tmp_path / f"replica{index}"
            folder.mkdir()
            env = {**server_env(folder), **shared}
            # Startup polls with blocking sleeps, so it runs off the event loop that serves the sandbox.
            servers.append(await anyio.to_thread.run_sync(lambda f=folder, e=env: HttpServer(f, env=e)))
        yield Replicas(sandbox, servers)
    finally:
        for server in servers:
            await anyio.to_thread.run_sync(server.stop)


@pytest.mark.parametrize("era", ["legacy", MODERN])
@pytest.mark.anyio
async def test_started_on_one_replica_read_on_the_other(replicas: Replicas, era: str) -> None:
    async with replicas.client(0, era) as first:
        started = await first.call_tool(
            START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
        )
    assert not started.is_error, started.content
    assert started.structured_content is not None
    handle = started.structured_content["session_id"]
    async with replicas.client(1, era) as second:
        status = await second.call_tool(STATUS_TOOL, {"session_id": handle})
        assert not status.is_error, status.content
        assert status.structured_content is not None
        assert status.structured_content["session_id"] == handle
    async with replicas.client(1, era, subject="bob") as stranger:
        foreign = await stranger.call_tool(STATUS_TOOL, {"session_id": handle})
    assert foreign.is_error
    assert "not found" in foreign.content[0].text.lower()  # type: ignore[union-attr]
    # Both replicas have every key, so neither warns about a key of its own.
    assert all("http.process_key" not in server.stderr() for server in replicas.servers)


CONFIRMED_WORKFLOW = "025d0113b81f05c29e7a4d61f0"  # Callback Scheduler, `confirm = true` in the sandbox catalog
CALLBACK = {"workflow_id": CONFIRMED_WORKFLOW, "variables": {"phone": "+19089536000"}}


async def _no_mid_call_requests(_context: Any, _params: Any) -> Any:
    raise AssertionError("the 2026-07-28 era asks in the call's result, never with a request mid-call")


@pytest.mark.anyio
async def test_confirmation_across_replicas(replicas: Replicas) -> None:
    async with replicas.client(0, elicitation_callback=_no_mid_call_requests) as first:
        pending = await first.session.call_tool(START_TOOL, CALLBACK, allow_input_required=True)
    assert isinstance(pending, InputRequiredResult)
    assert pending.input_requests is not None
    assert pending.request_state
    [(key, question)] = pending.input_requests.items()
    assert isinstance(question, ElicitRequest)
    assert "Callback Scheduler" in question.params.message
    assert replicas.sandbox.state.count("start") == 0

    responses = {key: ElicitResult(action="accept", content={"confirm": True})}
    async with replicas.client(1, elicitation_callback=_no_mid_call_requests) as second:
        done = await second.session.call_tool(
            START_TOOL, CALLBACK, input_responses=responses, request_state=pending.request_state
        )
    assert isinstance(done, CallToolResult)
    assert not done.is_error, done.content
    assert done.structured_content is not None
    assert done.structured_content["session_id"].startswith("wfs_")
    assert replicas.sandbox.state.count("start") == 1

    # The response opens once. Sent again, even by the same user, it starts nothing.
    async with replicas.client(1, elicitation_callback=_no_mid_call_requests) as again:
        with pytest.raises(MCPError, match="requestState"):
            await again.session.call_tool(
                START_TOOL, CALLBACK, input_responses=responses, request_state=pending.request_state
            )
    # The sealed state is bound to its principal: another user cannot use it on a replica that never opened it.
    async with replicas.client(0, subject="bob", elicitation_callback=_no_mid_call_requests) as stranger:
        with pytest.raises(MCPError, match="requestState"):
            await stranger.session.call_tool(
                START_TOOL, CALLBACK, input_responses=responses, request_state=pending.request_state
            )
    assert replicas.sandbox.state.count("start") == 1
