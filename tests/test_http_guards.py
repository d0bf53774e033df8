"""HTTP-level guards of the streamable HTTP transport: host and origin checks, the listen stream, strict JSON
bodies, readiness, and the refusal to listen on a reachable address without auth."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_avaya_workflows.http_transport import Readiness, bind_socket, build_http_app, endpoint_url
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.stdio import PARSE_ERROR_MESSAGE

from .conftest import Sandbox, make_settings
from .test_http_auth import ACCEPT, INITIALIZE, serving
from .test_transports import server_env


@pytest.fixture
async def open_server(sandbox: Sandbox) -> AsyncIterator[str]:
    sock = bind_socket("127.0.0.1", 0)
    url = endpoint_url(sock)
    settings = make_settings(sandbox.url, transport="http", allowed_hosts=["127.0.0.1:*", "mcp.test"])
    with sock:
        async with serving(build_http_app(build_server(settings), settings), sock):
            yield url


async def post(url: str, body: Any, **headers: str) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx2.AsyncClient(timeout=5) as http:
        return await http.post(
            url, content=content, headers={"Accept": ACCEPT, "Content-Type": "application/json", **headers}
        )


@pytest.mark.anyio
async def test_unlisted_host_is_refused(open_server: str) -> None:
    assert (await post(open_server, INITIALIZE, Host="attacker.example")).status_code == 421
    assert (await post(open_server, INITIALIZE, Host="mcp.test")).status_code == 200


@pytest.mark.anyio
async def test_foreign_origin_is_refused(open_server: str) -> None:
    assert (await post(open_server, INITIALIZE, Origin="https://attacker.example")).status_code == 403
    assert (await post(open_server, INITIALIZE, Origin="http://127.0.0.1:3000")).status_code == 200


@pytest.mark.anyio
async def test_listen_stream_is_refused_at_once(open_server: str) -> None:
    async with httpx2.AsyncClient(timeout=5) as http:
        response = await http.get(open_server, headers={"Accept": "text/event-stream"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.anyio
async def test_repeated_keys_get_a_json_rpc_error(open_server: str) -> None:
    body = (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"start_workflow_session",'
        b'"arguments":{"workflow_id":"025d010819f98dbc75776be9666","workflow_id":"025d0114c92e16d3af8b5e72a1"}}}'
    )
    response = await post(open_server, body, **{"mcp-protocol-version": "2025-11-25"})
    assert response.status_code == 400
    error = response.json()
    assert error["id"] == 7
    assert "repeats a key" in error["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "1.0", "id": 1, "method": "ping", "params": {"token": "Bearer abc.def.ghi"}},
    ],
)
@pytest.mark.anyio
async def test_non_message_body_gets_fixed_error(open_server: str, body: Any) -> None:
    response = await post(open_server, body, **{"mcp-protocol-version": "2025-11-25"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    # With an id the error names the problem. Without one it is the fixed JSON-RPC parse error.
    assert "not a single JSON-RPC 2.0" in message or message == PARSE_ERROR_MESSAGE
    assert "abc.def.ghi" not in response.text
    assert "input_value" not in response.text


@pytest.mark.anyio
async def test_trickled_body_times_out(open_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mcp_avaya_workflows.http_transport.BODY_READ_SECONDS", 0.5)

    async def trickle() -> Any:
        yield b'{"jsonrpc": "2.0",'
        await anyio.sleep(5)
        yield b' "id": 1, "method": "ping"}'

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            open_server, content=trickle(), headers={"Accept": ACCEPT, "Content-Type": "application/json"}
        )
    assert response.status_code == 408


@pytest.mark.anyio
async def test_readiness_follows_the_lifespan(sandbox: Sandbox) -> None:
    settings = make_settings(sandbox.url, transport="http")
    readiness = Readiness()
    app = build_http_app(build_server(settings), settings, readiness=readiness)
    assert not readiness.ready
    sock = bind_socket("127.0.0.1", 0)
    base = endpoint_url(sock).removesuffix("/mcp")
    with sock:
        async with serving(app, sock), httpx2.AsyncClient() as http:
            assert (await http.get(base + "/readyz")).status_code == 200
            readiness.ready, readiness.reasons = False, ["stopping"]
            draining = await http.get(base + "/readyz")
            assert draining.status_code == 503
            assert draining.json()["reasons"] == ["stopping"]
            assert (await http.get(base + "/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--host", "0.0.0.0"], "without authentication"),  # noqa: S104 - refused before anything binds
        (["--host", "0.0.0.0", "--allow-unauthenticated"], "AVAYA_WORKFLOWS_ALLOWED_HOSTS"),  # noqa: S104
    ],
)
def test_reachable_address_without_auth_is_refused(tmp_path: Path, args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_avaya_workflows", "serve", "--transport", "http", "--sandbox", *args],
        capture_output=True,
        text=True,
        env=server_env(tmp_path),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
