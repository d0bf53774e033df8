"""Every injected fault against each tool, with the expected outcome in one table.

Each case runs a real MCP client against the server and the sandbox over loopback HTTP. Besides the
outcome it checks that no start was sent twice, that the call returned before its deadline, and that
no planted secret reached a result, a log line or the audit record.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from mcp import Client

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import Fault, SandboxState, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, EXAMPLE_WORKFLOW, FAST, PLANTED_SECRET, capture_logs, make_settings
from .test_fault_leaks import FORBIDDEN, HOSTILE_BODY, HOSTILE_HEADERS, JWT_SHAPE, PLANTED_CARD

pytestmark = pytest.mark.anyio

CALL_TIMEOUT = 4.0
READ_TIMEOUT = 0.5
ATTEMPTS = 4
# Scheduling slack on top of the deadline: the event loop, the MCP round trip and the sandbox itself.
DEADLINE_SLACK = 1.0
OK = "ok"
UNKNOWN = "start_outcome_unknown"
RATE_LIMITED = "upstream_rate_limited"
UNAVAILABLE = "upstream_unavailable"
INVALID_RESPONSE = "upstream_invalid_response"
NO_TOKEN = "upstream_token_unavailable"
HOSTILE_429_HEADERS = {**HOSTILE_HEADERS, "Retry-After": "0"}


@dataclass(frozen=True)
class Row:
    """One fault, and what each tool must do under it.

    `sessions` is the number of sessions the sandbox contains after the faulted start: 1 where the fault
    struck after Infinity created the session. A start is never sent more than once, whatever the fault.
    """

    name: str
    target: str
    fault: dict[str, Any]
    start: str
    status: str
    sessions: int = 0


ROWS = [
    Row("latency", "api", {"status": None, "delay_seconds": 0.2}, start=OK, status=OK, sessions=1),
    Row("429", "api", {"status": 429, "body": HOSTILE_BODY, "headers": HOSTILE_429_HEADERS}, RATE_LIMITED, OK),
    *(
        Row(str(code), "api", {"status": code, "body": HOSTILE_BODY, "headers": HOSTILE_HEADERS}, UNKNOWN, OK)
        for code in (500, 502, 503, 504)
    ),
    Row("503-persistent", "api", {"status": 503, "body": HOSTILE_BODY, "times": None}, UNKNOWN, UNAVAILABLE),
    Row(
        "504-after-handling",
        "api",
        {"status": 504, "body": HOSTILE_BODY, "handle_first": True},
        start=UNKNOWN,
        status=OK,
        sessions=1,
    ),
    Row("reset-before-read", "api", {"action": "reset_before_read"}, UNKNOWN, OK),
    Row("reset-after-read", "api", {"action": "reset_after_read"}, start=UNKNOWN, status=OK, sessions=1),
    Row(
        "malformed-json",
        "api",
        {"status": 200, "body": '{"session": {"id": "' + PLANTED_SECRET},
        UNKNOWN,
        INVALID_RESPONSE,
    ),
    Row("truncated-json", "api", {"action": "truncate", "handle_first": True}, start=UNKNOWN, status=OK, sessions=1),
    Row("oversized-body", "api", {"action": "oversized", "status": 200}, UNKNOWN, INVALID_RESPONSE),
    Row("token-down", "token", {"status": 503, "body": HOSTILE_BODY, "times": None}, NO_TOKEN, NO_TOKEN),
    Row("token-reset", "token", {"action": "reset_before_read", "times": None}, NO_TOKEN, NO_TOKEN),
    Row("token-slow", "token", {"status": None, "delay_seconds": 1.0, "times": None}, NO_TOKEN, NO_TOKEN),
    Row("token-hiccup", "token", {"status": 503, "body": HOSTILE_BODY}, start=OK, status=OK, sessions=1),
    Row("token-429", "token", {"status": 429, "headers": HOSTILE_429_HEADERS}, start=OK, status=OK, sessions=1),
    Row("token-revoked-early", "api", {"action": "revoke_token"}, start=OK, status=OK, sessions=1),
]


@dataclass
class Run:
    """What one case emitted, and the audit record of the faulted call."""

    results: list[str]
    logs: io.StringIO
    audit: io.StringIO
    elapsed: float

    def faulted_record(self) -> dict[str, Any]:
        return dict(json.loads(self.audit.getvalue().splitlines()[-1]))

    def everything(self) -> str:
        return "\n".join([*self.results, self.logs.getvalue(), self.audit.getvalue()])


@pytest.fixture
async def sandbox_state() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=FAST)
    async with running_sandbox(state) as url:
        yield state, url


def _arrange(row: Row, tool: str) -> Callable[[SandboxState], None]:
    def arrange(state: SandboxState) -> None:
        if row.target == "token":
            # A cached token would skip the token endpoint, so revoke it: the faulted call must fetch a new one.
            state.revoke_tokens()
            state.add_fault(Fault(target="token", **row.fault))
        else:
            state.add_fault(Fault(target="start" if tool == START_TOOL else "status", **row.fault))

    return arrange


async def _run_case(state: SandboxState, url: str, row: Row, tool: str) -> Run:
    redactor = Redactor()
    redactor.add_secret(PLANTED_SECRET)
    audit, logs = io.StringIO(), io.StringIO()
    results: list[str] = []
    settings = make_settings(
        url, read_timeout=READ_TIMEOUT, connect_timeout=READ_TIMEOUT, call_timeout=CALL_TIMEOUT, retry_attempts=ATTEMPTS
    )
    server = build_server(settings, redactor=redactor, audit_log=AuditLog(redactor, audit))
    arguments: dict[str, Any] = {"workflow_id": EXAMPLE_WORKFLOW, "variables": {"card": PLANTED_CARD}}
    with capture_logs(logs, redactor, server_only=True):
        async with Client(server) as client:
            if tool == STATUS_TOOL:
                started = await client.call_tool(START_TOOL, arguments)
                assert started.structured_content is not None
                arguments = {"session_id": started.structured_content["session_id"]}
            _arrange(row, tool)(state)
            began = time.monotonic()
            result = await client.call_tool(tool, arguments)
            elapsed = time.monotonic() - began
            results += [result.model_dump_json(), json.dumps(result.structured_content)]
    return Run(results, logs, audit, elapsed)


@pytest.mark.parametrize("tool", [START_TOOL, STATUS_TOOL])
@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
async def test_fault_matrix(sandbox_state: tuple[SandboxState, str], row: Row, tool: str) -> None:
    state, url = sandbox_state

    run = await _run_case(state, url, row, tool)

    expected = row.start if tool == START_TOOL else row.status
    assert run.faulted_record()["outcome"] == expected
    assert run.elapsed < CALL_TIMEOUT + DEADLINE_SLACK
    # A start rejected with 401 never ran; every other start request that reached the sandbox may have.
    start_attempts = [entry for entry in state.requests if entry.kind == "start" and entry.status != 401]
    reached_start = not (tool == START_TOOL and row.target == "token" and row.start != OK)
    assert len(start_attempts) == (1 if reached_start else 0)
    assert len(state.sessions()) == (row.sessions if tool == START_TOOL else 1)
    emitted = run.everything()
    for secret in FORBIDDEN:
        assert secret not in emitted
    assert not JWT_SHAPE.search(emitted)
    assert "Traceback" not in "\n".join(run.results)


@pytest.mark.parametrize(
    "row", [row for row in ROWS if row.status == OK and row.name != "latency"], ids=lambda row: row.name
)
async def test_status_recovers_by_retrying(sandbox_state: tuple[SandboxState, str], row: Row) -> None:
    state, url = sandbox_state

    run = await _run_case(state, url, row, STATUS_TOOL)

    statuses = [entry.status for entry in state.requests if entry.kind == "status"]
    assert run.faulted_record()["outcome"] == OK
    if row.target == "api" and row.name != "token-revoked-early":
        # One faulted attempt, then the retry that succeeded.
        assert len(statuses) == 2
        assert statuses[-1] == 200


async def test_persistent_fault_bounds_attempts(sandbox_state: tuple[SandboxState, str]) -> None:
    state, url = sandbox_state
    row = next(row for row in ROWS if row.name == "503-persistent")

    await _run_case(state, url, row, STATUS_TOOL)

    assert [entry.status for entry in state.requests if entry.kind == "status"] == [503] * ATTEMPTS


@pytest.mark.parametrize("tool", [START_TOOL, STATUS_TOOL])
async def test_revoked_token_refreshed_once(sandbox_state: tuple[SandboxState, str], tool: str) -> None:
    state, url = sandbox_state
    row = next(row for row in ROWS if row.name == "token-revoked-early")

    await _run_case(state, url, row, tool)

    tokens = [entry.status for entry in state.requests if entry.kind == "token"]
    assert tokens == [200, 200]
    api = [entry.status for entry in state.requests if entry.kind in ("start", "status")]
    assert api[-2:] == [401, 201 if tool == START_TOOL else 200]
