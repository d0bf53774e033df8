"""Concurrency and memory: 200 calls at once share one token, in memory and over HTTP, and 10,000 calls leave
memory flat."""

from __future__ import annotations

import gc
import logging
import re
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from mcp_avaya_workflows.http_transport import bind_socket, build_http_app, endpoint_url
from mcp_avaya_workflows.sandbox import SandboxState, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, ERAS, EXAMPLE_WORKFLOW, PLANTED_SECRET, make_settings
from .test_http_auth import serving

pytestmark = pytest.mark.anyio

CONCURRENT_CALLS = 200
MEMORY_CALLS = 10_000
MEMORY_BATCHES = 10
# Allowed growth of traced memory between the first and the last batch of 1,000 calls. The server keeps
# no state per call, so real growth would be a leak of at least a few hundred bytes a call.
MAX_GROWTH_BYTES = 512 * 1024


@pytest.fixture
async def sandbox_url() -> AsyncIterator[tuple[SandboxState, str]]:
    # Sessions finish at once, so status calls return their full output.
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=0)
    async with running_sandbox(state) as url:
        yield state, url


def _load_settings(url: str) -> Any:
    # The limiter stays on, with a quota far above the load, so that every call still passes through it.
    return make_settings(url, rate_limit_per_minute=1_000_000, rate_limit_burst=1_000)


async def _call_all(client: Client, calls: list[tuple[str, dict[str, Any]]]) -> list[CallToolResult]:
    results: list[CallToolResult | None] = [None] * len(calls)

    async def call(index: int, tool: str, arguments: dict[str, Any]) -> None:
        results[index] = await client.call_tool(tool, arguments)

    async with anyio.create_task_group() as group:
        for index, (tool, arguments) in enumerate(calls):
            group.start_soon(call, index, tool, arguments)
    return [result for result in results if result is not None]


async def test_concurrent_calls_share_one_token(sandbox_url: tuple[SandboxState, str]) -> None:
    state, url = sandbox_url
    server = build_server(_load_settings(url))
    async with Client(server) as client:
        starts = await _call_all(client, [(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})] * CONCURRENT_CALLS)
        handles = [result.structured_content["session_id"] for result in starts if result.structured_content]
        statuses = await _call_all(client, [(STATUS_TOOL, {"session_id": handle}) for handle in handles])

    assert [result for result in starts + statuses if result.is_error] == []
    assert len(handles) == CONCURRENT_CALLS
    assert len(statuses) == CONCURRENT_CALLS
    assert {result.structured_content["status"] for result in statuses if result.structured_content} == {"COMPLETED"}
    assert state.count("token") == 1
    assert state.count("start") == CONCURRENT_CALLS
    assert len(state.sessions()) == CONCURRENT_CALLS


@pytest.mark.parametrize("era", ERAS)
async def test_concurrent_calls_over_http_share_one_token(sandbox_url: tuple[SandboxState, str], era: str) -> None:
    state, url = sandbox_url
    settings = _load_settings(url).model_copy(update={"transport": "http"})
    sock = bind_socket("127.0.0.1", 0)
    with sock:
        app = build_http_app(build_server(settings), settings)
        async with serving(app, sock), Client(streamable_http_client(endpoint_url(sock)), mode=era) as client:
            starts = await _call_all(client, [(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})] * CONCURRENT_CALLS)
            handles = [result.structured_content["session_id"] for result in starts if result.structured_content]
            statuses = await _call_all(client, [(STATUS_TOOL, {"session_id": handle}) for handle in handles])

    assert [result for result in starts + statuses if result.is_error] == []
    assert len(handles) == len(statuses) == CONCURRENT_CALLS
    assert state.count("token") == 1
    assert state.count("start") == CONCURRENT_CALLS


@pytest.fixture
def sandbox_process() -> Iterator[str]:
    """Run the sandbox in its own process, so that tracemalloc traces only this server and its client."""
    command = [sys.executable, "-m", "mcp_avaya_workflows", "sandbox", "--port", "0", "--time-scale", "0"]
    command += ["--client-id", CLIENT_ID, "--client-secret", PLANTED_SECRET]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first_line = process.stderr.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first_line)
        assert match, first_line
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.timeout(300)
async def test_memory_flat_across_calls(sandbox_process: str, caplog: pytest.LogCaptureFixture) -> None:
    # Captured log records would themselves grow with every call, so only warnings are kept.
    caplog.set_level(logging.WARNING)
    server = build_server(_load_settings(sandbox_process))
    batch = MEMORY_CALLS // MEMORY_BATCHES
    current: list[int] = []
    peaks: list[int] = []
    async with Client(server) as client:
        started = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})
        assert started.structured_content is not None
        arguments = {"session_id": started.structured_content["session_id"]}
        tracemalloc.start()
        try:
            for _ in range(MEMORY_BATCHES):
                tracemalloc.reset_peak()
                for _ in range(batch):
                    result = await client.call_tool(STATUS_TOOL, arguments)
                    assert not result.is_error
                gc.collect()
                now, peak = tracemalloc.get_traced_memory()
                current.append(now)
                peaks.append(peak)
        finally:
            tracemalloc.stop()

    # The first batch warms caches and pools; from the second on, memory must stay level.
    assert current[-1] - current[1] < MAX_GROWTH_BYTES, current
    assert max(peaks[1:]) - peaks[1] < MAX_GROWTH_BYTES, peaks
