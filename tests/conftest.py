"""Shared fixtures: a sandbox on a loopback port, settings pointing at it, and MCP clients."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp import Client

from mcp_avaya_workflows.demo import EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.logs import RedactingFormatter
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import ModuleScript, SandboxState, WorkflowScript, load_workflows, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.settings import Settings

CLIENT_ID = "test-client"
# A planted secret: tests prove it never appears in any output, error or log line.
PLANTED_SECRET = "planted-Secret-7c1f9e2a4b"
# Sandbox durations are multiplied by this, so a 0.6 s module takes 6 ms.
FAST = 0.01
ERAS = ["legacy", "2026-07-28"]
EXAMPLE_WORKFLOW = EXAMPLE_WORKFLOW_ID
# A workflow only the tests add to the sandbox: it returns the `data` of its start request as output.
ECHO_WORKFLOW = "025d0117fc5149d6a2b8e0c5d4"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Sandbox:
    state: SandboxState
    url: str


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=FAST)
    async with running_sandbox(state) as url:
        yield Sandbox(state=state, url=url)


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "infinity_url": url,
        "client_id": CLIENT_ID,
        "client_secret": PLANTED_SECRET,
        "handle_keys": Fernet.generate_key().decode(),
        # These tests exercise the API path for any workflow; the catalog tests load a catalog.
        "allow_any_workflow": True,
        "audit_log": "off",
        # Fast retries and no client-side rate limit, so that fault tests run in seconds; the reliability
        # tests set these themselves.
        "retry_backoff_initial": 0.01,
        "retry_backoff_max": 0.05,
        "rate_limit_per_minute": 0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return make_settings(sandbox.url)


@contextmanager
def capture_logs(buffer: io.StringIO, redactor: Redactor, *, server_only: bool = False) -> Iterator[io.StringIO]:
    """Write every log record at DEBUG to `buffer` through the server's redacting formatter.

    With `server_only`, the sandbox's own records are left out: the sandbox stands for Avaya's side, so
    its request log is not something this server emits.
    """
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(RedactingFormatter(redactor))
    if server_only:
        handler.addFilter(lambda record: not record.name.startswith(("mcp_avaya_workflows.sandbox", "uvicorn")))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Capture every log record at DEBUG, rendered by the server's redacting formatter."""
    with capture_logs(io.StringIO(), Redactor()) as buffer:
        yield buffer


def with_echo_workflow(name: str = "Echo", module_id: str = "mod_echo_001") -> dict[str, WorkflowScript]:
    """Return the packaged workflows plus ECHO_WORKFLOW, which ends at once with its start request's data as output."""
    workflows = load_workflows()
    workflows[ECHO_WORKFLOW] = WorkflowScript(
        id=ECHO_WORKFLOW, name=name, echo_data=True, modules=(ModuleScript(id=module_id, seconds=0),)
    )
    return workflows


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(settings: Settings, era: str) -> AsyncIterator[Client]:
    async with Client(build_server(settings), mode=era) as connected:
        yield connected
