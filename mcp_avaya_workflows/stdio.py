"""The stdio transport, with every message checked before the SDK parses it.

mcp 2.3.0's stdio transport parses each line with pydantic, which keeps the
last of two equal keys, so `{"workflow_id": "a", ..., "workflow_id": "b"}`
starts `b` while a reviewer reading the first key sees `a`. It also drops a
line it cannot parse, such as one nested hundreds of levels deep, without a
reply, so the client waits on that request forever. This transport rejects
repeated keys, deep nesting and huge integers itself, and replies to every
line it rejects: with the request's `id` when the line has one, and with the
JSON-RPC parse error and a null `id` otherwise.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, RequestId

from .strict_json import bounded_int_parser, exceeds_depth, reject_duplicate_keys, top_level_id

logger = logging.getLogger(__name__)

# Tool arguments may nest 8 levels (see `sanitizer.Limits`), and the JSON-RPC envelope adds 4 around them,
# so this is far above any valid message. Deeper lines are rejected before anything recurses into them.
MAX_MESSAGE_DEPTH = 64
# Python refuses to convert integers of more than 4,300 digits, and tool arguments accept at most 16.
MAX_MESSAGE_INTEGER_DIGITS = 1000

PARSE_ERROR_MESSAGE = "Parse error: the line is not a valid JSON-RPC message, or it is nested too deeply"
Rejection = tuple[RequestId | None, str]


def check_message(line: str) -> str | None:
    """Return why a JSON-RPC line must be rejected, or None to let the SDK parse it."""
    if exceeds_depth(line, MAX_MESSAGE_DEPTH):
        return f"the message is nested deeper than {MAX_MESSAGE_DEPTH} levels"
    try:
        json.loads(
            line, object_pairs_hook=reject_duplicate_keys, parse_int=bounded_int_parser(MAX_MESSAGE_INTEGER_DIGITS)
        )
    except json.JSONDecodeError:
        return None  # malformed JSON: the SDK replies with its parse error
    except (ValueError, RecursionError) as exc:
        return str(exc)
    return None


async def _checked_lines(lines: AsyncIterable[str], rejected: MemoryObjectSendStream[Rejection]) -> AsyncIterator[str]:
    async for line in lines:
        problem = check_message(line)
        if problem is None:
            yield line
            continue
        request_id = top_level_id(line)
        # The line itself may hold anything, so the log names the problem and the request ID only.
        logger.warning("stdio.message_rejected request_id=%r problem=%s", request_id, problem)
        await rejected.send((request_id, problem))


def _rejection_reply(request_id: RequestId | None, problem: str) -> SessionMessage:
    if request_id is None:
        error = ErrorData(code=PARSE_ERROR, message=PARSE_ERROR_MESSAGE)
    else:
        error = ErrorData(
            code=INVALID_REQUEST,
            message=(
                f"Invalid request: {problem}. Send each key once, nest at most {MAX_MESSAGE_DEPTH} levels, "
                f"and send long numbers as strings"
            ),
        )
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=error))


async def _stdin_lines() -> AsyncIterator[str]:
    """Yield the lines of stdin, read by a daemon thread so that a shutdown never waits on a blocked read.

    anyio's file wrapper reads in a worker thread that cannot be abandoned, so SIGTERM would wait for the
    client's next line, and the interpreter joins that thread at exit. A daemon thread ends with the process.
    It reads a duplicate of the stdin descriptor: a thread blocked on `sys.stdin.buffer` holds that
    reader's lock, and CPython aborts with "could not acquire lock" when it closes `sys.stdin` at exit.
    """
    lines_writer, lines_reader = anyio.create_memory_object_stream[str](0)
    token = anyio.lowlevel.current_token()
    descriptor = os.dup(sys.stdin.fileno())

    def read() -> None:
        stream = io.TextIOWrapper(open(descriptor, "rb"), encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            for line in stream:
                anyio.from_thread.run(lines_writer.send, line, token=token)
            anyio.from_thread.run_sync(lines_writer.close, token=token)
        except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the event loop has stopped, or the server no longer reads

    threading.Thread(target=read, name="stdin-reader", daemon=True).start()
    async with lines_reader:
        async for line in lines_reader:
            yield line


async def run_stdio(server: MCPServer[Any]) -> None:
    """Serve `server` over stdin and stdout until stdin closes."""
    rejected_writer, rejected_reader = anyio.create_memory_object_stream[Rejection](16)
    checked = cast(anyio.AsyncFile[str], _checked_lines(_stdin_lines(), rejected_writer))
    async with stdio_server(stdin=checked) as (read_stream, write_stream):
        forward_writer, forward_reader = create_context_streams[SessionMessage | Exception](0)

        async def forward() -> None:
            async with forward_writer:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        # The exception text can quote the input, so only its type is logged.
                        logger.warning("stdio.parse_error error=%s", type(item).__name__)
                        await write_stream.send(_rejection_reply(None, "not valid JSON-RPC"))
                        continue
                    await forward_writer.send(item)

        async def reply_to_rejections() -> None:
            async with rejected_reader:
                async for request_id, problem in rejected_reader:
                    await write_stream.send(_rejection_reply(request_id, problem))

        # MCPServer.run_stdio_async does the same with the unfiltered stream; the low-level server is the SDK's own.
        lowlevel = server._lowlevel_server
        async with anyio.create_task_group() as group:
            group.start_soon(forward)
            group.start_soon(reply_to_rejections)
            await lowlevel.run(forward_reader, write_stream, lowlevel.create_initialization_options())
            group.cancel_scope.cancel()
