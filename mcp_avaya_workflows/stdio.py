"""The stdio transport, with a JSON-RPC parse error sent for every line that cannot be parsed.

mcp 2.3.0's stdio transport drops a line it cannot parse, such as one nested
hundreds of levels deep, without a reply, so the client waits on that request
forever. JSON-RPC 2.0 asks for error -32700 with a null id instead, which is
what this wrapper sends; the SDK's HTTP transports already do the same.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from mcp.types import PARSE_ERROR, ErrorData, JSONRPCError

logger = logging.getLogger(__name__)

PARSE_ERROR_MESSAGE = "Parse error: the line is not a valid JSON-RPC message, or it is nested too deeply"


async def run_stdio(server: MCPServer[Any]) -> None:
    """Serve `server` over stdin and stdout until stdin closes."""
    async with stdio_server() as (read_stream, write_stream):
        forward_writer, forward_reader = create_context_streams[SessionMessage | Exception](0)

        async def forward() -> None:
            async with forward_writer:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        # The exception text can quote the input, so only its type is logged.
                        logger.warning("stdio.parse_error error=%s", type(item).__name__)
                        error = JSONRPCError(
                            jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message=PARSE_ERROR_MESSAGE)
                        )
                        await write_stream.send(SessionMessage(error))
                        continue
                    await forward_writer.send(item)

        # MCPServer.run_stdio_async does the same with the unfiltered stream; the low-level server is the SDK's own.
        lowlevel = server._lowlevel_server
        async with anyio.create_task_group() as group:
            group.start_soon(forward)
            await lowlevel.run(forward_reader, write_stream, lowlevel.create_initialization_options())
            group.cancel_scope.cancel()
