"""`mcp-avaya-workflows demo`: drive the server the way an MCP client does.

The demo launches `mcp-avaya-workflows serve --sandbox` as a stdio
subprocess, lists its tools and resources, starts Avaya's example workflow
with Avaya's example variables, waits for it to end with the status tool's
bounded wait, printing the progress the server reports, and prints the
redacted result. It needs no tenant and no credentials.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from .tools import START_TOOL, STATUS_TOOL

EXAMPLE_WORKFLOW_ID = "025d010819f98dbc75776be9666"
# The input variables of Avaya's own example request for this workflow.
EXAMPLE_VARIABLES = {
    "page": "payment_failed",
    "amount": "$80,988.00",
    "transaction_id": "TXN-2024-001234",
    "error": "Card declined",
    "user_id": "user_12345",
    "account": "premium",
}
# Each status call waits up to this long for the session to end, within the server's default cap of 30.
WAIT_SECONDS = 20.0
MAX_WAIT_SECONDS = 120.0


def run_demo(*, time_scale: float = 1.0) -> int:
    """Run the demo and return the process exit code: 0 when the workflow completed."""
    try:
        return anyio.run(_demo, time_scale)
    except Exception as exc:
        if _is_broken_pipe(exc):
            # The reader of stdout has gone, as with `demo | head`: stop quietly, as command-line tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        # The server logs its own error to stderr, just above this line.
        _say(f"The demo stopped because the server exited or the connection failed ({type(exc).__name__}).")
        return 1


async def _demo(time_scale: float) -> int:
    server = StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "mcp_avaya_workflows", "serve", "--transport", "stdio"),
            *("--sandbox", "--sandbox-time-scale", str(time_scale)),
        ],
        # The SDK passes only a few safe variables to a server it launches, so the settings go through here.
        env={**os.environ, "AVAYA_WORKFLOWS_LOG_LEVEL": "WARNING", "AVAYA_WORKFLOWS_AUDIT_LOG": "off"},
    )
    _say("Launching `mcp-avaya-workflows serve --sandbox` over stdio, as an MCP client would.")
    async with Client(server) as client:
        info = client.server_info
        _say(
            f"1. Connected to {info.name if info else 'the server'} {info.version if info else ''}, "
            f"protocol {client.protocol_version}."
        )
        await _list_capabilities(client)
        handle = await _start(client)
        if handle is None:
            return 1
        final = await _follow(client, handle)
    if final is None:
        return 1
    _say("5. Final result, after redaction:")
    _say(json.dumps(final, indent=2), indent=3)
    _say(f"Masked variables: {', '.join(final['masked_variables']) or 'none'}.", indent=3)
    return 0 if final["status"] == "COMPLETED" else 1


async def _list_capabilities(client: Client) -> None:
    tools = await client.list_tools()
    resources = await client.list_resources()
    _say(f"2. Tools: {', '.join(tool.name for tool in tools.tools)}")
    _say(f"Resources: {', '.join(str(resource.uri) for resource in resources.resources)}", indent=3)


async def _start(client: Client) -> str | None:
    arguments = {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES}
    _say(f"3. {START_TOOL}({json.dumps(arguments)})")
    result = await client.call_tool(START_TOOL, arguments)
    if result.is_error or result.structured_content is None:
        _say(f"Start failed: {_text_of(result.content)}", indent=3)
        return None
    started = result.structured_content
    _say(f"-> {started['workflow_name']}: {started['status']}, session_id {started['session_id'][:24]}...", indent=3)
    return str(started["session_id"])


async def _follow(client: Client, handle: str) -> dict[str, Any] | None:
    _say(f"4. {STATUS_TOOL} with wait_seconds={WAIT_SECONDS:.0f}; the server reports progress while it waits:")
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    last_message = None

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal last_message
        # Only changes are printed; the server reports after every read.
        step = (message or "").split(",", 1)[0]
        if step != last_message:
            _say(f"progress {progress:5.1f} s  {step}", indent=3)
            last_message = step

    while time.monotonic() < deadline:
        arguments = {"session_id": handle, "wait_seconds": WAIT_SECONDS}
        result = await client.call_tool(STATUS_TOOL, arguments, progress_callback=on_progress)
        if result.is_error or result.structured_content is None:
            _say(f"Status failed: {_text_of(result.content)}", indent=3)
            return None
        status: dict[str, Any] = result.structured_content
        _say(f"-> {status['status']}, outputs so far: {len(status['output_variables'])}", indent=3)
        if status["terminal"]:
            return status
    _say(f"The session did not finish within {MAX_WAIT_SECONDS:.0f} seconds.", indent=3)
    return None


def _is_broken_pipe(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_broken_pipe(inner) for inner in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def _text_of(content: list[Any]) -> str:
    return " ".join(getattr(block, "text", "") for block in content)


def _say(text: str, *, indent: int = 0) -> None:
    prefix = " " * indent
    print("\n".join(prefix + line for line in text.splitlines()), flush=True)
