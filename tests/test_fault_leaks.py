"""Both tools under every fault the sandbox can inject, with secrets planted upstream: nothing leaks.

The sandbox's error bodies and headers echo the client secret, an access token, a card number and
an upstream session ID, as a misbehaving gateway might. Whatever the fault, none of them may appear
in a tool result, a tool error, a log line, a notification or an audit record.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from mcp import Client

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import Fault, SandboxState, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, EXAMPLE_WORKFLOW, FAST, PLANTED_SECRET, capture_logs, make_settings

pytestmark = pytest.mark.anyio

UPSTREAM_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.c2lnbmF0dXJlLXBsYW50ZWQ"
PLANTED_CARD = "4111 1111 1111 1111"
UPSTREAM_SESSION = "028d01111220a063d64b039dad"
HOSTILE_BODY = {
    "error": f"invalid_client {PLANTED_SECRET}",
    "message": f"token {UPSTREAM_JWT} secret={PLANTED_SECRET} card {PLANTED_CARD} session {UPSTREAM_SESSION}",
    "error_description": f"Bearer {UPSTREAM_JWT}",
}
HOSTILE_HEADERS = {
    "X-Debug-Token": UPSTREAM_JWT,
    "X-Request-Id": f"req-{PLANTED_SECRET}",
    "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{PLANTED_SECRET}"',
    "Retry-After": "1",
}
RAW_BODIES = {
    "html": f"<html><body>Gateway error for {PLANTED_SECRET} with {UPSTREAM_JWT}</body></html>",
    "malformed": '{"error": "' + PLANTED_SECRET + '", "message": ',
    "empty": "",
    "oversized": json.dumps({"message": "x" * (2 * 1024 * 1024) + PLANTED_SECRET}),
}
FORBIDDEN = (
    PLANTED_SECRET,
    quote(PLANTED_SECRET, safe=""),
    PLANTED_CARD,
    PLANTED_CARD.replace(" ", ""),
    UPSTREAM_SESSION,
)
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
UPSTREAM_ID_SHAPE = re.compile(r"028d[0-9a-f]{22}")


@dataclass
class Exits:
    results: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    logs: io.StringIO = field(default_factory=io.StringIO)
    audit: io.StringIO = field(default_factory=io.StringIO)

    def everything(self, *, include_logs: bool = True) -> str:
        logs = self.logs.getvalue() if include_logs else ""
        return "\n".join([*self.results, *self.notifications, logs, self.audit.getvalue()])


@dataclass(frozen=True)
class Scenario:
    name: str
    arrange: Callable[[SandboxState], None]


def _fault(target: str, **options: Any) -> Callable[[SandboxState], None]:
    def arrange(state: SandboxState) -> None:
        if target == "token":
            # Cached tokens would skip the token endpoint, so revoke them: the next call must fetch one.
            state.revoke_tokens()
        state.add_fault(Fault(target=target, times=10, **options))  # type: ignore[arg-type]

    return arrange


def _revoke(state: SandboxState) -> None:
    state.revoke_tokens()


def _scenarios() -> list[Scenario]:
    scenarios: list[Scenario] = []
    for target in ("token", "start", "status"):
        for status in (400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504):
            scenarios.append(
                Scenario(
                    f"{target}-{status}", _fault(target, status=status, body=HOSTILE_BODY, headers=HOSTILE_HEADERS)
                )
            )
        for name, body in RAW_BODIES.items():
            scenarios.append(
                Scenario(f"{target}-{name}-body", _fault(target, status=502, body=body, headers=HOSTILE_HEADERS))
            )
        scenarios.append(Scenario(f"{target}-200-malformed", _fault(target, status=200, body=RAW_BODIES["malformed"])))
        scenarios.append(Scenario(f"{target}-slow", _fault(target, status=None, delay_seconds=1.0)))
    scenarios.append(Scenario("tokens-revoked", _revoke))
    return scenarios


@pytest.fixture
async def sandbox_state() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=FAST)
    async with running_sandbox(state) as url:
        yield state, url


@pytest.mark.parametrize("scenario", _scenarios(), ids=lambda scenario: scenario.name)
async def test_no_secret_leaks_under_fault(sandbox_state: tuple[SandboxState, str], scenario: Scenario) -> None:
    state, url = sandbox_state
    exits = Exits()
    redactor = Redactor()
    redactor.add_secret(PLANTED_SECRET)

    async def on_log(params: Any) -> None:
        exits.notifications.append(json.dumps(params.model_dump(mode="json")))

    settings = make_settings(url, read_timeout=0.5)
    server = build_server(settings, redactor=redactor, audit_log=AuditLog(redactor, exits.audit))
    with capture_logs(exits.logs, redactor, server_only=True):
        async with Client(server, logging_callback=on_log) as client:
            arguments = {"workflow_id": EXAMPLE_WORKFLOW, "variables": {"card": PLANTED_CARD}}
            first = await client.call_tool(START_TOOL, arguments)
            assert not first.is_error
            assert first.structured_content is not None
            handle = first.structured_content["session_id"]
            exits.results.append(first.model_dump_json())

            scenario.arrange(state)
            for tool, call_arguments in ((START_TOOL, arguments), (STATUS_TOOL, {"session_id": handle})) * 2:
                result = await client.call_tool(tool, call_arguments)
                exits.results.append(result.model_dump_json())
                exits.results.append(json.dumps(result.structured_content))

    emitted = exits.everything()
    for secret in FORBIDDEN:
        assert secret not in emitted, secret
    assert not JWT_SHAPE.search(emitted)
    # Upstream session IDs may appear in the operator's log, which is where support needs them, but nowhere else.
    assert not UPSTREAM_ID_SHAPE.search(exits.everything(include_logs=False))
    assert "Traceback" not in "\n".join(exits.results)
    # Every call, failed or not, left exactly one audit record.
    assert len(exits.audit.getvalue().splitlines()) == 5


@pytest.mark.parametrize(
    "workflow_id",
    [
        pytest.param("025d0112a7c4e91b3f6d20a8e5", id="failed-session"),
        pytest.param("025d0114c92e16d3af8b5e72a1", id="never-finishes"),
        pytest.param("025d0115da3f27e4b09c6f83b2", id="forbidden-to-this-client"),
        pytest.param("025d0000000000000000000000", id="unknown-workflow"),
    ],
)
async def test_no_secret_leaks_from_scripted_outcomes(
    sandbox_state: tuple[SandboxState, str], workflow_id: str
) -> None:
    _, url = sandbox_state
    audit = io.StringIO()
    redactor = Redactor()
    redactor.add_secret(PLANTED_SECRET)
    server = build_server(make_settings(url), redactor=redactor, audit_log=AuditLog(redactor, audit))
    emitted: list[str] = []
    async with Client(server) as client:
        started = await client.call_tool(START_TOOL, {"workflow_id": workflow_id, "variables": {"card": PLANTED_CARD}})
        emitted.append(started.model_dump_json())
        if not started.is_error:
            assert started.structured_content is not None
            for _ in range(3):
                status = await client.call_tool(STATUS_TOOL, {"session_id": started.structured_content["session_id"]})
                emitted.append(status.model_dump_json())
    text = "\n".join([*emitted, audit.getvalue()])

    for secret in FORBIDDEN:
        assert secret not in text
    assert not JWT_SHAPE.search(text)
    assert not UPSTREAM_ID_SHAPE.search(text)
