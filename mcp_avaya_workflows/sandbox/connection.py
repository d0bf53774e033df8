"""Responses that break the HTTP connection on purpose: a TCP reset, or a body cut off halfway.

ASGI gives an application no handle on its connection, so these reach for the transport through
uvicorn's own objects (see `find_transport`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

# How long to wait for uvicorn to notice a connection the sandbox closed itself. uvicorn learns it on
# the event loop's next iteration, so this is only a bound for a connection that never reports it.
DISCONNECT_TIMEOUT_SECONDS = 5.0
# struct linger with l_onoff=1 and l_linger=0, which makes close() send RST and drop unsent data.
# NOTE: this is the layout on Linux and macOS, which declare two ints. Windows declares two unsigned
# shorts, and the resets have not been tried there.
_LINGER_RESET = struct.pack("ii", 1, 0)


class TransportNotFoundError(RuntimeError):
    """Raised when the sandbox cannot reach the transport of the connection under the ASGI server it runs in."""


def find_transport(receive: Receive) -> asyncio.Transport:
    """Return the asyncio transport of the connection that `receive` reads from.

    Checked against uvicorn 0.55: its h11 and httptools protocols both pass the ASGI app the bound
    method `RequestResponseCycle.receive`, and that cycle keeps the connection's transport in its
    `transport` attribute. Starlette 1.10 passes `receive` on unchanged. Under any other server this
    raises TransportNotFoundError. When that happens before a response starts, Starlette sends a 500,
    and after, uvicorn closes the connection, so a connection fault never passes silently.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise TransportNotFoundError(
            "cannot reach the connection's transport to break it: the sandbox expects uvicorn's "
            f"RequestResponseCycle.receive (checked with uvicorn 0.55), got {receive!r}"
        )
    return transport


async def reset_connection(receive: Receive) -> None:
    """Abort the connection with a TCP reset (RST), dropping any response data not yet sent."""
    transport = find_transport(receive)
    sock = transport.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError as exc:
        # The peer may have closed the socket already. Aborting still ends the connection, with FIN.
        logger.debug("could not set SO_LINGER before resetting the connection: %s", exc)
    transport.abort()
    await _wait_for_disconnect(receive)


async def close_connection(receive: Receive) -> None:
    """Close the connection with FIN once every byte written so far has been sent."""
    find_transport(receive).close()
    await _wait_for_disconnect(receive)


async def _wait_for_disconnect(receive: Receive) -> None:
    # uvicorn marks the request disconnected only when the transport reports the connection lost, on
    # a later iteration of the event loop. Returning earlier would make uvicorn 0.55 log that the app
    # "returned without starting response" and try to send a 500 on the closed connection.
    try:
        async with asyncio.timeout(DISCONNECT_TIMEOUT_SECONDS):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        logger.debug("the connection did not report its disconnection within %s s", DISCONNECT_TIMEOUT_SECONDS)


class ConnectionResetResponse(Response):
    """A response that sends nothing and resets the connection instead."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await reset_connection(receive)


class TruncatedResponse(Response):
    """The status line and headers of `source`, then the first half of its body, then a closed connection.

    The headers keep the Content-Length of the whole body, so the client sees the body end early.
    The connection ends with FIN, not RST: on Linux, a reset can make the client's kernel discard the
    half it received but had not read yet, which would turn the truncation into a plain reset.
    """

    def __init__(self, source: Response) -> None:
        super().__init__(status_code=source.status_code)
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.source.body)
        await send(
            {"type": "http.response.start", "status": self.source.status_code, "headers": self.source.raw_headers}
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await close_connection(receive)
