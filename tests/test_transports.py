"""The same end-to-end checks over both transports a client can use: stdio and streamable HTTP.

Each transport runs the real `mcp-avaya-workflows serve --sandbox` command in a subprocess, and a real MCP
client talks to it in both protocol eras. The in-memory server is the reference the listings must match.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES, EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG
from mcp_avaya_workflows.server import CATALOG_URI, build_server
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import ERAS, make_settings

TRANSPORTS = ["stdio", "http"]
STARTUP_SECONDS = 30.0
# Module durations are multiplied by this, so the example workflow runs for about a second.
TIME_SCALE = "0.1"
LISTENING = re.compile(r"MCP server listening on (http://\S+)")


def server_env(tmp_path: Path) -> dict[str, str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
    }
    return {
        **clean,
        "AVAYA_WORKFLOWS_HANDLE_KEYS": Fernet.generate_key().decode(),
        "AVAYA_WORKFLOWS_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "AVAYA_WORKFLOWS_LOG_LEVEL": "INFO",
    }


class HttpServer:
    """`serve --transport http --sandbox` in a subprocess, on a free loopback port."""

    def __init__(self, tmp_path: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / f"http-{time.monotonic_ns()}.log"
        self._stderr = self.stderr_path.open("wb")
        command = [sys.executable, "-m", "mcp_avaya_workflows", "serve", "--transport", "http", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env or server_env(tmp_path),
            cwd=tmp_path,
        )
        try:
            self.url = self._wait_for_url()
            self.base_url = self.url.removesuffix("/mcp")
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            match = LISTENING.search(self.stderr_path.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"the server did not start listening:\n{self.stderr()}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if httpx2.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server never became ready:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path_factory.mktemp("http"), "--sandbox", "--sandbox-time-scale", TIME_SCALE)
    yield server
    assert server.stop() == 0, server.stderr()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connect(
    transport: str, era: str, http_server: HttpServer, tmp_path: Path, **options: Any
) -> AsyncIterator[Client]:
    if transport == "http":
        async with Client(streamable_http_client(http_server.url), mode=era, **options) as client:
            yield client
        return
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_avaya_workflows", "serve", "--sandbox", "--sandbox-time-scale", TIME_SCALE],
        env=server_env(tmp_path),
        cwd=str(tmp_path),
    )
    async with Client(parameters, mode=era, **options) as client:
        yield client


def _listing(tools: Any) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


@pytest.mark.anyio
async def test_tool_listing_matches_the_in_memory_server(
    transport: str, era: str, http_server: HttpServer, tmp_path: Path
) -> None:
    settings = make_settings("http://127.0.0.1:9", catalog=SANDBOX_CATALOG, allow_any_workflow=False)
    async with Client(build_server(settings), mode=era) as reference:
        expected = _listing((await reference.list_tools()).tools)
    async with connect(transport, era, http_server, tmp_path) as client:
        listed = _listing((await client.list_tools()).tools)
    assert listed == expected
    assert {tool["name"] for tool in listed} >= {START_TOOL, STATUS_TOOL}


@pytest.mark.anyio
async def test_start_and_follow_to_completion_with_progress(
    transport: str, era: str, http_server: HttpServer, tmp_path: Path
) -> None:
    progress: list[str] = []

    async def on_progress(_progress: float, _total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with connect(transport, era, http_server, tmp_path) as client:
        started = await client.call_tool(
            START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
        )
        assert not started.is_error, started.content
        assert started.structured_content is not None
        session_id = started.structured_content["session_id"]
        assert session_id.startswith("wfs_")
        status = await client.call_tool(
            STATUS_TOOL, {"session_id": session_id, "wait_seconds": 20}, progress_callback=on_progress
        )
    assert not status.is_error, status.content
    assert status.structured_content is not None
    assert status.structured_content["terminal"] is True
    assert status.structured_content["status"] == "COMPLETED"
    assert progress, "no progress notification arrived during the wait"
    assert all("waited" in message for message in progress)


@pytest.mark.anyio
async def test_bad_argument_names_the_field(transport: str, era: str, http_server: HttpServer, tmp_path: Path) -> None:
    async with connect(transport, era, http_server, tmp_path) as client:
        result = await client.call_tool(START_TOOL, {"workflow_id": "not an id!"})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "workflow_id" in text
    assert "Traceback" not in text


@pytest.mark.anyio
async def test_unknown_handle_is_not_found(transport: str, era: str, http_server: HttpServer, tmp_path: Path) -> None:
    async with connect(transport, era, http_server, tmp_path) as client:
        result = await client.call_tool(STATUS_TOOL, {"session_id": "wfs_" + "A" * 120})
    assert result.is_error
    assert "not found" in result.content[0].text.lower()  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_catalog_resource_reads(transport: str, era: str, http_server: HttpServer, tmp_path: Path) -> None:
    async with connect(transport, era, http_server, tmp_path) as client:
        result = await client.read_resource(CATALOG_URI)
    catalog = json.loads(result.contents[0].text)  # type: ignore[union-attr]
    assert EXAMPLE_WORKFLOW_ID in json.dumps(catalog)


def test_unshared_keys_are_warned_about(http_server: HttpServer) -> None:
    # The fixture's server has a handle key but no request-state key, like a Secret with one empty entry.
    log = http_server.stderr()
    assert "WARNING" in log
    assert "http.process_key: AVAYA_WORKFLOWS_REQUEST_STATE_KEYS is unset" in log
    assert "http.process_key: AVAYA_WORKFLOWS_HANDLE_KEYS" not in log
