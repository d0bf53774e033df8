"""ASGI middleware that logs every request in the sandbox's request log, including 404s and 405s."""

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


@dataclass
class Exchange:
    """The log entry of a request under construction: its kind, the calling client and a start body."""

    kind: RequestKind
    client_id: str | None = None
    body: Any = None


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
        # Starlette's outer error middleware turns an exception into a 500 after this one has
        # finished, so 500 is the status to log when no response went through here.
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            entry = RecordedRequest(
                kind=exchange.kind,
                method=scope["method"],
                path=scope["path"],
                status=status,
                client_id=exchange.client_id,
                body=exchange.body,
                timestamp=timestamp,
            )
            self.state.record(entry)
            logger.debug(
                "sandbox request kind=%s method=%s path=%s status=%d client_id=%s",
                entry.kind,
                entry.method,
                entry.path,
                entry.status,
                entry.client_id,
            )
