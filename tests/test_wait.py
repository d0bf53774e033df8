"""Bounded waits in the status tool: progress, expiry, the polling schedule, bad values, cancellation and deadlines.

Every test drives a real MCP client in memory against the server, and the server reads the sandbox over
loopback HTTP. The sandbox's request log shows how often the server polled Infinity.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, ProgressNotification

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import (
    Fault,
    ModuleScript,
    SandboxState,
    WorkflowScript,
    load_workflows,
    running_sandbox,
)
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.service import CallTiming
from mcp_avaya_workflows.settings import Settings
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, EXAMPLE_WORKFLOW, FAST, PLANTED_SECRET, Sandbox, capture_logs, make_settings

pytestmark = pytest.mark.anyio

NEVER_FINISHES = "025d0114c92e16d3af8b5e72a1"
# A workflow only one test adds to the sandbox, with a secret in its module ID.
LEAKY_WORKFLOW = "025d0119d4f8b3a05c2e7f16b0"
# The never-finishing workflow stays on its second module. Its first module lasts 2 ms at the fixture's time scale.
HOLD_MODULE = "mod_monitorHold_002"
EXAMPLE_MODULES = ("mod_lookupCustomer_001", "mod_checkPayment_002", "mod_createTicket_003", "mod_resolve_004")
# At this time scale each of the example's four 0.6 s modules takes 0.3 s, so the workflow ends after 1.2 s.
HALF_SPEED = 0.5
TIMING = CallTiming()
# Scheduling slack on top of a promised return time: the event loop, the MCP round trip and the sandbox.
SLACK = 1.5
PROGRESS_MESSAGE = re.compile(
    r"(?:(?P<running>RUNNING) in module (?P<module>mod_\w+)|(?P<final>COMPLETED)), "
    r"(?P<elapsed>\d+\.\d) s of (?P<total>\d+(?:\.\d+)?) s waited"
)


class ProgressLog:
    """A progress callback that keeps every (progress, total, message) it receives.

    `on_first_report` runs when the first report arrives, before it is kept.
    """

    def __init__(self, on_first_report: Callable[[], None] | None = None) -> None:
        self.calls: list[tuple[float, float | None, str | None]] = []
        self._on_first_report = on_first_report

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        if not self.calls and self._on_first_report is not None:
            self._on_first_report()
        self.calls.append((progress, total, message))


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def audited_server(settings: Settings) -> tuple[Any, io.StringIO]:
    """Build a server whose audit records go to the returned buffer."""
    redactor = Redactor()
    buffer = io.StringIO()
    return build_server(settings, redactor=redactor, audit_log=AuditLog(redactor, buffer)), buffer


def audit_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


async def start_session(client: Client, workflow_id: str) -> str:
    result = await client.call_tool(START_TOOL, {"workflow_id": workflow_id})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return str(result.structured_content["session_id"])


async def timed_status(
    client: Client, session_id: str, wait_seconds: object, progress: ProgressLog | None = None
) -> tuple[CallToolResult, float]:
    """Call the status tool and return its result and the seconds the call took."""
    began = time.monotonic()
    result = await client.call_tool(
        STATUS_TOOL, {"session_id": session_id, "wait_seconds": wait_seconds}, progress_callback=progress
    )
    return result, time.monotonic() - began


async def settle() -> None:
    # On the JSON-RPC path the client runs each progress callback in a task of its own, so the last one can
    # still be pending when call_tool returns.
    await anyio.sleep(0.1)


def status_reads(sandbox: Sandbox) -> list[float]:
    """Return the arrival times of the status reads in the sandbox's request log, oldest first."""
    return [entry.timestamp for entry in sandbox.state.requests if entry.kind == "status"]


async def test_wait_returns_on_completion(client: Client, sandbox: Sandbox) -> None:
    sandbox.state.time_scale = HALF_SPEED
    session_id = await start_session(client, EXAMPLE_WORKFLOW)
    progress = ProgressLog()

    result, elapsed = await timed_status(client, session_id, 5, progress)
    await settle()

    assert not result.is_error, text_of(result)
    status = result.structured_content
    assert status is not None
    assert status["status"] == "COMPLETED"
    assert status["terminal"] is True
    assert status["is_running"] is False
    assert status["current_module"] is None
    # The workflow ends after 1.2 s, and the next read comes at most poll_initial later.
    assert elapsed < 1.2 + TIMING.poll_initial + SLACK
    assert len(progress.calls) >= 2
    values = [value for value, _, _ in progress.calls]
    assert values == sorted(set(values))
    for value, total, message in progress.calls:
        assert total == 5
        assert message is not None
        match = PROGRESS_MESSAGE.fullmatch(message)
        assert match, message
        assert match["total"] == "5"
        assert abs(float(match["elapsed"]) - value) <= 0.05 + 1e-9
        if match["running"]:
            assert match["module"] in EXAMPLE_MODULES
    final_message = progress.calls[-1][2]
    assert final_message is not None
    assert final_message.startswith("COMPLETED, ")
    first_message = progress.calls[0][2]
    assert first_message is not None
    assert first_message.startswith(f"RUNNING in module {EXAMPLE_MODULES[0]}, ")


async def test_wait_expiry_returns_running(client: Client, sandbox: Sandbox) -> None:
    session_id = await start_session(client, NEVER_FINISHES)
    progress = ProgressLog()

    result, elapsed = await timed_status(client, session_id, 2, progress)
    await settle()

    assert not result.is_error, text_of(result)
    status = result.structured_content
    assert status is not None
    assert status["is_running"] is True
    assert status["terminal"] is False
    assert status["status"] == "RUNNING"
    assert status["current_module"] == HOLD_MODULE
    assert elapsed >= 2
    assert elapsed < 2 + SLACK
    last_message = progress.calls[-1][2]
    assert last_message is not None
    assert last_message.startswith(f"RUNNING in module {HOLD_MODULE}, ")
    assert last_message.endswith(" of 2 s waited")


async def test_wait_polls_adaptively(client: Client, sandbox: Sandbox) -> None:
    session_id = await start_session(client, NEVER_FINISHES)
    # Past the first module's 2 ms, so every read returns the same module and no read resets the interval.
    await anyio.sleep(0.1)
    before = len(status_reads(sandbox))
    progress = ProgressLog()

    result, _ = await timed_status(client, session_id, 4, progress)
    await settle()

    assert not result.is_error, text_of(result)
    reads = status_reads(sandbox)[before:]
    # With the module unchanged, the sleeps before the reads grow by poll_growth from poll_initial:
    # 0.5, 0.8 and 1.28 s, so reads come at about 0, 0.5, 1.3 and 2.58 s. The next sleep (2.048 s) is cut
    # to the 1.42 s left, so the fifth read comes at the end of the wait, and the loop stops there.
    # A fixed 0.5 s interval would make 1 + 4 / 0.5 = 9 reads.
    assert len(reads) == 5
    assert len(progress.calls) == 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(reads)]
    for gap, interval in zip(gaps, (0.5, 0.8, 1.28), strict=False):
        # The sandbox stamps arrivals with the wall clock, so a tolerance of 20 ms covers the clock difference.
        assert gap >= interval - 0.02, gaps
    assert gaps[0] < gaps[1] < gaps[2]


async def test_wait_without_progress_callback(sandbox: Sandbox, era: str) -> None:
    sandbox.state.time_scale = HALF_SPEED
    notifications: list[ProgressNotification] = []

    async def keep_progress(message: Any) -> None:
        if isinstance(message, ProgressNotification):
            notifications.append(message)

    logs = io.StringIO()
    with capture_logs(logs, Redactor(), server_only=True):
        async with Client(build_server(make_settings(sandbox.url)), mode=era, message_handler=keep_progress) as client:
            with_callback = await start_session(client, EXAMPLE_WORKFLOW)
            without_callback = await start_session(client, EXAMPLE_WORKFLOW)
            progress = ProgressLog()
            reported, _ = await timed_status(client, with_callback, 5, progress)
            await settle()
            notified = len(notifications)
            silent, elapsed = await timed_status(client, without_callback, 5)
            await settle()

    assert not silent.is_error, text_of(silent)
    assert reported.structured_content is not None
    assert silent.structured_content is not None
    assert silent.structured_content["status"] == "COMPLETED"
    assert silent.structured_content["terminal"] is True
    assert set(silent.structured_content) == set(reported.structured_content)
    assert {**silent.structured_content, "session_id": None} == {**reported.structured_content, "session_id": None}
    assert elapsed < 1.2 + TIMING.poll_initial + SLACK
    assert len(progress.calls) >= 2
    # Only the JSON-RPC path passes notifications to the message handler, so the direct path has none to count.
    assert len(notifications) == (len(progress.calls) if era == "legacy" else 0)
    assert len(notifications) == notified
    assert "workflow.progress_failed" not in logs.getvalue()


@pytest.mark.parametrize(
    ("wait_seconds", "problem", "fix"),
    [
        (6, "is above this server's maximum of 5 seconds", "call again to keep waiting"),
        (5.001, "is above this server's maximum of 5 seconds", "call again to keep waiting"),
        (-1, "is negative", "Pass a number of seconds from 0 to 5"),
        ("3", "must be a number, not a string", "Pass a number of seconds from 0 to 5"),
        (True, "must be a number, not a boolean", "Pass a number of seconds from 0 to 5"),
        ([3], "must be a number, not an array", "Pass a number of seconds from 0 to 5"),
        (10**400, "is above this server's maximum of 5 seconds", "call again to keep waiting"),
        (-(10**400), "is negative", "Pass a number of seconds from 0 to 5"),
    ],
    ids=["above-cap", "just-above-cap", "negative", "string", "boolean", "array", "huge", "hugely-negative"],
)
async def test_invalid_wait_rejected(sandbox: Sandbox, era: str, wait_seconds: object, problem: str, fix: str) -> None:
    server, audit = audited_server(make_settings(sandbox.url, max_wait_seconds=5))
    async with Client(server, mode=era) as client:
        session_id = await start_session(client, NEVER_FINISHES)

        result, _ = await timed_status(client, session_id, wait_seconds)

    text = text_of(result)
    assert result.is_error is True
    assert f"Invalid argument 'wait_seconds': {problem}." in text
    assert fix in text
    assert sandbox.state.count("status") == 0
    record = audit_records(audit)[-1]
    assert record["tool"] == STATUS_TOOL
    assert record["outcome"] == "invalid_input"
    assert record["field"] == "wait_seconds"
    assert record["workflow_id"] == NEVER_FINISHES
    assert record["handle_digest"] is not None


async def test_wait_at_cap_accepted(sandbox: Sandbox) -> None:
    sandbox.state.time_scale = 0
    server, audit = audited_server(make_settings(sandbox.url, max_wait_seconds=5))
    async with Client(server) as client:
        session_id = await start_session(client, EXAMPLE_WORKFLOW)

        result, _ = await timed_status(client, session_id, 5)

    assert not result.is_error, text_of(result)
    assert audit_records(audit)[-1]["outcome"] == "ok"


@pytest.mark.parametrize("cap", [5.0, 42.5])
async def test_schema_maximum_follows_cap(sandbox: Sandbox, cap: float) -> None:
    async with Client(build_server(make_settings(sandbox.url, max_wait_seconds=cap))) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    wait = tools[STATUS_TOOL].input_schema["properties"]["wait_seconds"]
    assert wait["type"] == "number"
    assert wait["minimum"] == 0
    assert wait["maximum"] == cap
    assert wait["default"] == 0
    assert "wait_seconds" not in tools[STATUS_TOOL].input_schema["required"]


async def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll `condition` every 20 ms for up to `seconds`, and return its last value."""
    for _ in range(round(seconds / 0.02)):
        if condition():
            return True
        await anyio.sleep(0.02)
    return condition()


async def test_cancelled_wait_stops_polling(sandbox: Sandbox, era: str) -> None:
    server, audit = audited_server(make_settings(sandbox.url))
    async with Client(server, mode=era) as client:
        session_id = await start_session(client, NEVER_FINISHES)
        outcome: list[str] = []

        async def wait_long(scope: anyio.CancelScope) -> None:
            with scope:
                await client.call_tool(STATUS_TOOL, {"session_id": session_id, "wait_seconds": 10})
                outcome.append("returned")

        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()
            group.start_soon(wait_long, scope)
            # Between the reads at about 0.5 and 1.3 s into the wait, with 0.4 s of margin on either side.
            await anyio.sleep(0.9)
            # On the JSON-RPC path the client sends notifications/cancelled for the abandoned request. On the
            # direct path the cancellation reaches the server's handler through the await itself.
            scope.cancel()

        cancelled = await wait_for(lambda: any(r["outcome"] == "cancelled" for r in audit_records(audit)), 2.0)
        await anyio.sleep(0.2)
        reads_after_cancel = sandbox.state.count("status")
        # Without the cancellation the wait would read again at about 1.3 and 2.6 s into the wait.
        await anyio.sleep(2.0)
        reads_later = sandbox.state.count("status")
        followup = await client.call_tool(STATUS_TOOL, {"session_id": session_id})

    assert outcome == []
    assert cancelled is True
    records = [record for record in audit_records(audit) if record["tool"] == STATUS_TOOL]
    assert [record["outcome"] for record in records] == ["cancelled", "ok"]
    # Reads at about 0 and 0.5 s into the wait, before the cancellation at 0.9 s.
    assert reads_after_cancel == 2
    assert reads_later == reads_after_cancel
    assert not followup.is_error, text_of(followup)
    assert followup.structured_content is not None
    assert followup.structured_content["status"] == "RUNNING"
    assert sandbox.state.count("status") == reads_later + 1


async def test_slow_first_read_hits_deadline(sandbox: Sandbox) -> None:
    settings = make_settings(sandbox.url, call_timeout=2, max_wait_seconds=3)
    server, audit = audited_server(settings)
    async with Client(server) as client:
        session_id = await start_session(client, NEVER_FINISHES)
        sandbox.state.add_fault(Fault(target="status", status=None, delay_seconds=10, times=None))
        progress = ProgressLog()

        result, elapsed = await timed_status(client, session_id, 3, progress)
        await settle()

    # The first read has only call_timeout, so the call fails then, although wait_seconds + wait_grace is 5 s.
    assert result.is_error is True
    assert "did not respond in time" in text_of(result)
    assert elapsed >= 2
    assert elapsed < 2 + SLACK
    assert progress.calls == []
    assert audit_records(audit)[-1]["outcome"] == "upstream_unavailable"


async def test_slow_later_read_keeps_last_status(sandbox: Sandbox) -> None:
    settings = make_settings(sandbox.url, call_timeout=2, max_wait_seconds=3)
    server, audit = audited_server(settings)
    async with Client(server) as client:
        session_id = await start_session(client, NEVER_FINISHES)
        # Past the first module's 2 ms, so the status kept from the first read names the hold module.
        await anyio.sleep(0.1)
        # The server reports progress after each read, so the first report comes after the first read and
        # 0.5 s before the second: from then on, every status read is delayed.
        progress = ProgressLog(
            lambda: sandbox.state.add_fault(Fault(target="status", status=None, delay_seconds=10, times=None))
        )

        result, elapsed = await timed_status(client, session_id, 3, progress)
        await settle()

    assert not result.is_error, text_of(result)
    status = result.structured_content
    assert status is not None
    assert status["status"] == "RUNNING"
    assert status["is_running"] is True
    assert status["current_module"] == HOLD_MODULE
    # The second read may run until wait_seconds + wait_grace, and then the call returns the first read's status.
    assert elapsed >= 3 + TIMING.wait_grace - 0.1
    assert elapsed < 3 + TIMING.wait_grace + 1
    assert len(progress.calls) == 1
    assert audit_records(audit)[-1]["outcome"] == "ok"


async def test_progress_messages_redacted() -> None:
    # A module ID that carries the client secret, as a careless workflow might.
    leaky_module = f"mod_{PLANTED_SECRET}"
    workflows = load_workflows()
    workflows[LEAKY_WORKFLOW] = WorkflowScript(
        id=LEAKY_WORKFLOW, name="Leaky", never_finishes=True, modules=(ModuleScript(id=leaky_module, seconds=1),)
    )
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, workflows=workflows, time_scale=FAST)
    progress = ProgressLog()
    async with running_sandbox(state) as url, Client(build_server(make_settings(url))) as client:
        started = await client.call_tool(START_TOOL, {"workflow_id": LEAKY_WORKFLOW})
        assert started.structured_content is not None
        arguments = {"session_id": started.structured_content["session_id"], "wait_seconds": 1}
        result = await client.call_tool(STATUS_TOOL, arguments, progress_callback=progress)

    messages = "\n".join(message or "" for _, _, message in progress.calls)
    assert progress.calls
    assert PLANTED_SECRET not in messages
    assert state.sessions()[0].id not in messages
    assert PLANTED_SECRET not in result.model_dump_json()
