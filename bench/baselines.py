"""The bare echo server that the benchmarks compare our server against.

It is an `MCPServer` with one `echo` tool and nothing else: no upstream call, no sanitizer and no
redaction. Served over the same transport, with the same uvicorn settings and worker count, it is the floor
that the MCP SDK and the transport cost. For stdio and HTTP it runs as its own process:

    python -m bench.baselines echo --transport stdio
    python -m bench.baselines echo --transport http --port 0 [--workers N]

Over stdio it imports only the SDK, so its memory is the SDK's floor too. Over HTTP it also imports our
HTTP transport module, for the same uvicorn settings and worker supervisor. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer

if TYPE_CHECKING:
    from starlette.applications import Starlette

HOST = "127.0.0.1"
ECHO_TEXT = "ping"


def build_echo_server() -> MCPServer:
    server: MCPServer = MCPServer("bench-echo")

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    return server


def echo_http_app() -> Starlette:
    """Build the echo server's streamable HTTP app, stateless like ours, with the SDK's defaults otherwise."""
    return build_echo_server().streamable_http_app(stateless_http=True, host=HOST)


@dataclass(frozen=True)
class EchoAppFactory:
    """A picklable factory of the echo app, which uvicorn sends to each worker process to build its app."""

    def __call__(self) -> Starlette:
        _log_to_stderr()
        return echo_http_app()


def _log_to_stderr() -> None:
    # INFO is our server's default level, so both servers log the same uvicorn and SDK lines.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def serve_echo(transport: str, port: int, workers: int) -> None:
    """Serve the echo server until SIGTERM or SIGINT, over HTTP with our transport's uvicorn settings."""
    _log_to_stderr()
    if transport == "stdio":
        build_echo_server().run("stdio")
        return

    import anyio

    from mcp_avaya_workflows.http_transport import Readiness, bind_socket, quiet_sdk_logs, serve_http, serve_workers

    quiet_sdk_logs()
    with bind_socket(HOST, port) as sock:
        if workers > 1:
            serve_workers(EchoAppFactory(), sock, workers=workers, log_level="INFO")
            return
        app = echo_http_app()
        anyio.run(lambda: serve_http(app, sock, log_level="INFO", readiness=Readiness()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="serve the bare echo server")
    echo.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    echo.add_argument("--host", choices=[HOST], default=HOST, help="address to bind, which can only be 127.0.0.1")
    echo.add_argument("--port", type=int, default=0, help="TCP port, 0 for any free port (default: 0)")
    echo.add_argument("--workers", type=int, default=1, help="worker processes sharing the socket (default: 1)")
    args = parser.parse_args(argv)
    serve_echo(args.transport, args.port, args.workers)


if __name__ == "__main__":
    main()
