"""Shared fixtures: a sandbox on a loopback port, settings pointing at it, and MCP clients."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp import Client

from mcp_avaya_workflows.demo import EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.logs import RedactingFormatter
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import SandboxState, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.settings import Settings

CLIENT_ID = "test-client"
# A planted secret: tests prove it never appears in any output, error or log line.
PLANTED_SECRET = "planted-Secret-7c1f9e2a4b"
# Sandbox durations are multiplied by this, so a 0.6 s module takes 6 ms.
FAST = 0.01
ERAS = ["legacy", "2026-07-28"]
EXAMPLE_WORKFLOW = EXAMPLE_WORKFLOW_ID


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
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return make_settings(sandbox.url)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Capture every log record at DEBUG, rendered by the server's redacting formatter."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(RedactingFormatter(Redactor()))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(settings: Settings, era: str) -> AsyncIterator[Client]:
    async with Client(build_server(settings), mode=era) as connected:
        yield connected
