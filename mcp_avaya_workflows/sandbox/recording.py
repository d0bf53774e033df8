"""ASGI middleware that logs every request in the sandbox's request log, including 404s, 405s and resets."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .paths import CONTROL_PREFIX, JWKS_PATH, SESSIONS_PATH, TOKEN_PATH
from .state import RecordedRequest, RequestKind, SandboxState

logger = logging.getLogger(__name__)

_EXCHANGE_KEY = "mcp_avaya_workflows.sandbox.exchange"
# The status logged when no status line was sent, because a fault reset the connection first.
NO_RESPONSE_STATUS = 0


@dataclass
class Exchange:
    """The log entry of a request under construction: kind, calling client, start body and applied fault."""

    kind: RequestKind
    client_id: str | None = None
    body: Any = None
    fault: str | None = None


def classify_path(path: str) -> RequestKind:
    """Name the endpoint a path belongs to, whatever the method, so a GET on the start path is "start"."""
    if path == TOKEN_PATH:
        return "token"
    if path == JWKS_PATH:
        return "jwks"
    if path == SESSIONS_PATH:
        return "start"
    if path.startswith(SESSIONS_PATH + "/"):
        return "status"
    if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
        return "control"
    return "other"


def exchange_of(request: Request) -> Exchange:
    """Return the log entry under construction for this request (a detached one outside the middleware)."""
    exchange = request.scope.get(_EXCHANGE_KEY)
    if isinstance(exchange, Exchange):
        return exchange
    return Exchange(kind=classify_path(request.url.path))


class RequestRecorder:
    """Request-log middleware, written as pure ASGI so it records the status of every response, 404s included."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(kind=classify_path(scope["path"]))
        scope[_EXCHANGE_KEY] = exchange
        timestamp = time.time()
        # An app that returns without sending a status line has reset the connection.
        status = NO_RESPONSE_STATUS
        started = False

        async def send_and_note_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        except Exception:
            # Starlette's outer error middleware turns the exception into a 500 after this one has
            # finished, unless a response had already started.
            if not started:
                status = 500
            raise
        finally:
            entry = RecordedRequest(
                kind=exchange.kind,
                method=scope["method"],
                path=scope["path"],
                status=status,
                client_id=exchange.client_id,
                body=exchange.body,
                timestamp=timestamp,
                fault=exchange.fault,
            )
            self.state.record(entry)
            logger.debug(
                "sandbox request kind=%s method=%s path=%s status=%d client_id=%s fault=%s",
                entry.kind,
                entry.method,
                entry.path,
                entry.status,
                entry.client_id,
                entry.fault,
            )
