"""Run the sandbox with uvicorn, inside the caller's event loop or as a blocking standalone server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn

from ..settings import is_loopback_host
from .app import create_app
from .state import SandboxState

logger = logging.getLogger(__name__)

# Seconds uvicorn waits for open connections when stopping before it cancels them.
SHUTDOWN_TIMEOUT_SECONDS = 5


def check_host(host: str, *, allow_non_loopback: bool = False) -> None:
    """Raise ValueError unless `host` is a loopback address or `allow_non_loopback` is set.

    The sandbox accepts a well-known client secret, so it must not be reachable from other machines
    by accident.
    """
    if allow_non_loopback or is_loopback_host(host):
        return
    raise ValueError(
        f"cannot bind the sandbox to {host!r} because it is not a loopback address. "
        "Use 127.0.0.1, ::1 or localhost, or pass allow_non_loopback=True to expose it on purpose."
    )


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to the application that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn.Server.serve (checked against uvicorn 0.55) installs its own handlers here and
        # re-raises the signal after shutting down, which would take Ctrl+C away from the embedding app.
        yield


def _build_config(state: SandboxState, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        # "auto" would switch to httptools wherever it is installed. Pinning h11 keeps one HTTP parser,
        # and one verified path to the transport for the connection faults (see connection.py).
        http="h11",
        # uvicorn's access log goes to stdout, which a stdio MCP server must keep for the protocol.
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_SECONDS,
    )


async def _serve(server: uvicorn.Server) -> None:
    # uvicorn calls sys.exit when it cannot bind, which would end the whole event loop.
    try:
        await server.serve()
    except SystemExit as exc:
        message = f"the sandbox server failed to start (exit status {exc.code}); uvicorn logged the cause"
        raise RuntimeError(message) from exc


async def _wait_until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> str:
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the sandbox server stopped before it started listening")
        await asyncio.sleep(0.005)
    address = server.servers[0].sockets[0].getsockname()
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"http://{host}:{address[1]}"


@contextlib.asynccontextmanager
async def running_sandbox(
    state: SandboxState,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_non_loopback: bool = False,
) -> AsyncIterator[str]:
    """Serve `state` in the current event loop and yield its base URL, such as `http://127.0.0.1:54321`.

    Port 0 picks a free port. Raises ValueError for a non-loopback host unless `allow_non_loopback`.
    """
    check_host(host, allow_non_loopback=allow_non_loopback)
    server = _EmbeddedServer(_build_config(state, host, port))
    task = asyncio.create_task(_serve(server))
    try:
        yield await _wait_until_started(server, task)
    finally:
        server.should_exit = True
        await task


def serve_sandbox_forever(
    state: SandboxState,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_non_loopback: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `state` until SIGINT or SIGTERM, writing nothing to stdout.

    `on_ready` receives the base URL once the server listens. Without it, the URL goes to stderr.
    """
    check_host(host, allow_non_loopback=allow_non_loopback)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_stopped(state, host, port, on_ready or _announce))


async def _serve_until_stopped(state: SandboxState, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    server = uvicorn.Server(_build_config(state, host, port))
    task = asyncio.create_task(_serve(server))
    on_ready(await _wait_until_started(server, task))
    # uvicorn's own signal handlers set should_exit, which ends this task.
    await task
    logger.info("sandbox server stopped")


def _announce(base_url: str) -> None:
    print(f"Avaya Infinity sandbox listening on {base_url}", file=sys.stderr, flush=True)
