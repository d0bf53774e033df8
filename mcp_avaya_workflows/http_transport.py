"""The streamable HTTP transport: both protocol eras, stateless, with OAuth, health checks and host checks.

Each request is independent. The 2026-07-28 era is stateless by design, and
the legacy era runs in the SDK's stateless mode, so any replica can serve
any request and a load balancer needs no sticky sessions. Session handles and
the SDK's request state are sealed with keys every replica shares.

Routes:
- `/mcp`, the MCP endpoint, behind bearer-token auth when an issuer is set;
- `/.well-known/oauth-protected-resource/mcp`, the RFC 9728 metadata that a 401 points to;
- `/healthz` (the process is up) and `/readyz` (it serves MCP requests), outside auth.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import INVALID_REQUEST, PARSE_ERROR, jsonrpc_message_adapter
from pydantic import AnyHttpUrl, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ConfigurationError
from .settings import Settings, is_loopback_host
from .stdio import MAX_MESSAGE_DEPTH, PARSE_ERROR_MESSAGE, check_message
from .strict_json import top_level_id

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
# The SDK's own request body limit; a larger body is refused before it is parsed.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Seconds a client has to send a whole request body.
BODY_READ_SECONDS = 30.0
# Connections served at once. Beyond this uvicorn returns 503, so a flood of idle connections cannot exhaust
# file descriptors. A proxy in front should still enforce header and body timeouts.
MAX_CONNECTIONS = 1000
# Seconds uvicorn lets requests in flight finish after SIGTERM before it cancels them. A call ends within
# max(CALL_TIMEOUT, wait_seconds + 2 s), which is 52 s at the largest settings, so every call fits.
GRACEFUL_SHUTDOWN_SECONDS = 65


@dataclass
class Readiness:
    """Whether the server serves MCP requests: true between startup and the start of shutdown."""

    ready: bool = False
    reasons: list[str] = field(default_factory=lambda: ["starting"])


def check_bind(settings: Settings) -> None:
    """Raise `ConfigurationError` when the HTTP settings would expose the server unsafely."""
    problems = []
    remote = not is_loopback_host(settings.host)
    if remote and not settings.auth_issuer and not settings.allow_unauthenticated:
        problems.append(
            f"the HTTP transport would listen on {settings.host}, which other machines can reach, without "
            "authentication: set AVAYA_WORKFLOWS_AUTH_ISSUER and AVAYA_WORKFLOWS_PUBLIC_URL to require OAuth "
            "access tokens, bind 127.0.0.1, or set AVAYA_WORKFLOWS_ALLOW_UNAUTHENTICATED=true for a network "
            "where every client is trusted."
        )
    if remote and not settings.allowed_hosts and not settings.public_url:
        problems.append(
            f"the HTTP transport listens on {settings.host} but does not know which Host header clients send: set "
            "AVAYA_WORKFLOWS_PUBLIC_URL, or AVAYA_WORKFLOWS_ALLOWED_HOSTS (such as mcp.example.com), or '*' to "
            "turn the check off."
        )
    if problems:
        raise ConfigurationError(problems)


def warn_about_process_keys(settings: Settings) -> None:
    """Log a warning for each key setting left unset, which ties handles or request state to this process.

    Over HTTP a load balancer may send the next request to another replica, which could then open
    neither, so an empty key in a deployment's Secret must not go unnoticed.
    """
    for name, value in (("HANDLE_KEYS", settings.handle_keys), ("REQUEST_STATE_KEYS", settings.request_state_keys)):
        if value is None:
            logger.warning(
                "http.process_key: AVAYA_WORKFLOWS_%s is unset or empty, so this process uses a key of its own; "
                "replicas and restarts then reject what it sealed. Give every replica the same key.",
                name,
            )


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host and Origin values the MCP endpoint accepts."""
    hosts = list(settings.allowed_hosts)
    origins = list(settings.allowed_origins)
    if "*" in hosts:
        logger.warning("http.host_check_off: AVAYA_WORKFLOWS_ALLOWED_HOSTS is '*', so any Host header is accepted")
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if not hosts:
        hosts = list(LOOPBACK_HOSTS)
        if settings.public_url:
            public = urlsplit(settings.public_url)
            hosts += [public.netloc, f"{public.hostname}:*"]
    if not origins:
        origins = list(LOOPBACK_ORIGINS)
        if settings.public_url:
            public = urlsplit(settings.public_url)
            origins.append(f"{public.scheme}://{public.netloc}")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build_http_app(
    server: MCPServer[Any],
    settings: Settings,
    *,
    verifier: TokenVerifier | None = None,
    readiness: Readiness | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """Return the ASGI app serving `server` over streamable HTTP, with auth when `verifier` is given.

    `on_stop` is awaited when the app's lifespan ends, after the MCP session manager has stopped.
    """
    readiness = readiness or Readiness()
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=transport_security(settings),
        host=settings.host,
        max_request_body_size=MAX_BODY_BYTES,
    )
    session_manager = server.session_manager
    endpoint: ASGIApp = _StrictJsonGuard(_NoListenStream(StreamableHTTPASGIApp(session_manager)))
    routes: list[Route] = []
    middleware: list[Middleware] = []
    if verifier is not None:
        assert settings.public_url is not None
        assert settings.auth_issuer is not None
        resource = AnyHttpUrl(settings.public_url)
        endpoint = RequireAuthMiddleware(endpoint, [], build_resource_metadata_url(resource))
        middleware = [
            # The verifier checks the audience itself, so the backend gets no resource URL to compare.
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
            Middleware(AuthContextMiddleware),
        ]
        routes += create_protected_resource_routes(
            resource_url=resource,
            authorization_servers=[AnyHttpUrl(settings.auth_issuer)],
            scopes_supported=[settings.auth_read_scope, settings.auth_start_scope],
            resource_name=server.title or server.name,
        )
    routes += [
        Route(MCP_PATH, endpoint=endpoint),
        Route("/healthz", endpoint=_healthz, methods=["GET"]),
        Route("/readyz", endpoint=_readyz(readiness), methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            async with session_manager.run():
                readiness.ready, readiness.reasons = True, []
                try:
                    yield
                finally:
                    readiness.ready, readiness.reasons = False, ["stopping"]
        finally:
            if on_stop is not None:
                await on_stop()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def _healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _readyz(readiness: Readiness) -> Callable[[Request], Any]:
    async def readyz(_: Request) -> Response:
        if readiness.ready:
            return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})
        return JSONResponse(
            {"status": "not_ready", "reasons": readiness.reasons},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )

    return readyz


class _NoListenStream:
    """Return 405 for a legacy-era `GET /mcp` instead of an SSE stream that never ends.

    In stateless mode, mcp 2.3's legacy transport responds to the listen-mode
    GET with an SSE stream and waits for server-initiated messages. A stateless
    server never sends any, so the response stays open with no bytes and
    clients hang on connect (modelcontextprotocol/python-sdk#3492). The
    streamable HTTP spec lets a server without such a stream return 405, which
    clients treat as "no listen stream". The 2026-07-28 era already returns
    405 itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        await self._app(scope, receive, send)


class _StrictJsonGuard:
    """Apply the stdio transport's message checks to each POST body before the SDK parses it.

    pydantic keeps the last of two equal keys, so a body with `workflow_id`
    twice would start the second while a reviewer reads the first. Repeated
    keys, deep nesting and huge integers get a JSON-RPC error instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        body: bytes | None = None
        with anyio.move_on_after(BODY_READ_SECONDS):
            body = await _read_body(receive)
        if body is None:
            # A client that trickles its body would otherwise hold a connection and its buffer for ever.
            await _json_rpc_error(None, INVALID_REQUEST, "Request body not received in time", 408)(scope, receive, send)
            return
        if len(body) > MAX_BODY_BYTES:
            await _json_rpc_error(None, INVALID_REQUEST, "Request body too large", 413)(scope, receive, send)
            return
        text = body.decode("utf-8", errors="replace")
        problem = check_message(text) or _not_a_message(text)
        if problem is not None:
            request_id = top_level_id(text)
            logger.warning("http.message_rejected request_id=%r problem=%s", request_id, problem)
            await _rejection(request_id, problem)(scope, receive, send)
            return
        await self._app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes | None:
    """Read the request body, stopping once it passes MAX_BODY_BYTES; None when the client disconnects."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _not_a_message(text: str) -> str | None:
    """Return why `text` is not one JSON-RPC message, such as a batch or a request without a method.

    The SDK would respond with pydantic's validation dump, which quotes the request back.
    """
    try:
        jsonrpc_message_adapter.validate_json(text, by_name=False)
    except ValidationError:
        return "the body is not a single JSON-RPC 2.0 request, notification or response"
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _rejection(request_id: Any, problem: str) -> Response:
    if request_id is None:
        return _json_rpc_error(None, PARSE_ERROR, PARSE_ERROR_MESSAGE, 400)
    message = (
        f"Invalid request: {problem}. Send each key once, nest at most {MAX_MESSAGE_DEPTH} levels, "
        "and send long numbers as strings"
    )
    return _json_rpc_error(request_id, INVALID_REQUEST, message, 400)


def _json_rpc_error(request_id: Any, code: int, message: str, status: int) -> Response:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def bind_socket(host: str, port: int) -> socket.socket:
    """Open the listening socket before the server starts, so port 0 resolves to a known free port."""
    # Without log_config=None, uvicorn would install its own log handlers, and the `--workers` supervisor's log
    # lines would bypass the redacting handler on the root logger.
    config = uvicorn.Config(app=_healthz, host=host, port=port, log_config=None)
    return config.bind_socket()


def endpoint_url(sock: socket.socket) -> str:
    address = sock.getsockname()
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"http://{host}:{address[1]}{MCP_PATH}"


class _Server(uvicorn.Server):
    """uvicorn's server, marked not ready on SIGTERM and exiting with status 0 after a graceful stop."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness) -> None:
        super().__init__(config)
        self._readiness = readiness

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        logger.info("server.signal_received signal=%s", signal.Signals(sig).name)
        self._readiness.ready, self._readiness.reasons = False, ["stopping"]
        super().handle_exit(sig, frame)
        # uvicorn 0.55 raises each captured signal again once it has stopped, so the process would die of
        # SIGTERM with status 143. The stop is complete by then, so the process exits 0 like the stdio one.
        self._captured_signals.clear()


def uvicorn_config(app: Any, *, log_level: str, workers: int = 1) -> uvicorn.Config:
    """Return the uvicorn settings every HTTP server of this project runs with, one worker or several.

    With `workers` above 1, `app` is a picklable factory that each worker process calls to build its own app.
    """
    return uvicorn.Config(
        app,
        log_level=log_level.lower(),
        # uvicorn's default log config adds its own stdout handlers; the root logger already writes to stderr.
        log_config=None,
        access_log=False,
        http="h11",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
        factory=workers > 1,
        workers=workers,
    )


def quiet_sdk_logs() -> None:
    # The SDK logs "Terminating session: None" at INFO after every stateless request.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)


async def serve_http(app: Starlette, sock: socket.socket, *, log_level: str, readiness: Readiness) -> None:
    """Serve `app` on `sock` until SIGTERM or SIGINT, letting requests in flight finish first."""
    config = uvicorn_config(app, log_level=log_level)
    quiet_sdk_logs()
    print(f"MCP server listening on {endpoint_url(sock)}", file=sys.stderr, flush=True)
    await _Server(config, readiness).serve(sockets=[sock])


def serve_workers(app_factory: Callable[[], ASGIApp], sock: socket.socket, *, workers: int, log_level: str) -> bool:
    """Serve on `sock` from `workers` processes until SIGTERM or SIGINT; return False if a worker failed to start.

    uvicorn's `Multiprocess` supervisor starts each worker with the spawn method and hands it `sock`, so the
    workers share one listening socket and the kernel gives each new connection to one of them.
    `app_factory` is pickled into every worker, which calls it to build its own app. The supervisor replaces
    a worker that dies and replaces all of them one by one on SIGHUP. On SIGTERM or SIGINT it sends SIGTERM
    to each worker and waits for them, and each worker finishes its requests in flight as a single server does.
    NOTE: a worker runs uvicorn's own `Server`, so its `/readyz` turns 503 only once its requests in flight
    have finished, not at SIGTERM. The worker does stop accepting connections at SIGTERM.
    """
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    supervisor = Multiprocess(uvicorn_config(app_factory, log_level=log_level, workers=workers), sockets=[sock])
    print(f"MCP server listening on {endpoint_url(sock)}", file=sys.stderr, flush=True)
    supervisor.run()
    # uvicorn stops every worker once one exits with STARTUP_FAILURE, because a restart would fail the same way.
    return not any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
