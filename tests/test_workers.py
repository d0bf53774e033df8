"""`serve --transport http --workers 2`: two processes serve one listening socket with the same keys.

The kernel hands each new connection to whichever worker accepts it first. The test stops one worker
with SIGSTOP, so the other must take the next connection, which makes the choice of worker certain.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio.to_thread
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES, EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, PLANTED_SECRET, Sandbox
from .test_cli import run_cli
from .test_transports import HttpServer, server_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")


def worker_pids(parent: int) -> list[int]:
    """Return the worker processes of `parent`, leaving out multiprocessing's resource tracker."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """Keep `pid` stopped, so it accepts no connection, for less than uvicorn's 5 s worker health check."""
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        # The third field of /proc/PID/stat is the state, T once the process has stopped.
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, f"worker {pid} did not stop"
            time.sleep(0.01)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
async def workers(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[HttpServer]:
    env = server_env(tmp_path)
    # Left unset, so the parent must generate the handle key and give it to both workers.
    del env["AVAYA_WORKFLOWS_HANDLE_KEYS"]
    env.update(
        {
            "AVAYA_WORKFLOWS_INFINITY_URL": sandbox.url,
            "AVAYA_WORKFLOWS_CLIENT_ID": CLIENT_ID,
            "AVAYA_WORKFLOWS_CLIENT_SECRET": PLANTED_SECRET,
            "AVAYA_WORKFLOWS_CATALOG": str(SANDBOX_CATALOG),
        }
    )
    # Startup polls with blocking sleeps, so it runs off the event loop that serves the sandbox.
    server = await anyio.to_thread.run_sync(lambda: HttpServer(tmp_path, "--workers", "2", env=env))
    try:
        yield server
    finally:
        await anyio.to_thread.run_sync(server.stop)


@pytest.mark.anyio
async def test_handle_from_one_worker_opens_on_other(workers: HttpServer, sandbox: Sandbox) -> None:
    pids = worker_pids(workers.process.pid)
    assert len(pids) == 2, pids
    first, second = pids

    with stopped(second):
        async with Client(streamable_http_client(workers.url)) as client:
            started = await client.call_tool(
                START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
            )
    assert not started.is_error, started.content
    assert started.structured_content is not None
    handle = started.structured_content["session_id"]

    with stopped(first):
        async with Client(streamable_http_client(workers.url)) as client:
            status = await client.call_tool(STATUS_TOOL, {"session_id": handle})
    assert not status.is_error, status.content
    assert status.structured_content is not None
    assert status.structured_content["session_id"] == handle

    # Each worker has its own Infinity client, so two token requests show that both workers called upstream.
    assert sandbox.state.count("token") == 2
    assert "http.worker_keys_generated" in workers.stderr()
    assert sorted(worker_pids(workers.process.pid)) == sorted(pids), "a worker was restarted"
    assert await anyio.to_thread.run_sync(workers.stop) == 0, workers.stderr()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--workers", "2"], "needs --transport http"),
        (["serve", "--transport", "http", "--sandbox", "--workers", "2"], "cannot run with --sandbox"),
        (["serve", "--transport", "http", "--workers", "0"], "must be 1 or more, got 0"),
    ],
)
def test_workers_rejected_combinations(args: list[str], expected: str) -> None:
    upstream = {
        "AVAYA_WORKFLOWS_INFINITY_URL": "http://127.0.0.1:9",
        "AVAYA_WORKFLOWS_CLIENT_ID": CLIENT_ID,
        "AVAYA_WORKFLOWS_CLIENT_SECRET": PLANTED_SECRET,
    }
    result = run_cli(*args, env=upstream)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
