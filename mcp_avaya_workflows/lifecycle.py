"""Run the server until its transport ends or the process gets SIGTERM or SIGINT, then stop cleanly."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable

import anyio

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def run_until_stopped(serve: Callable[[], Awaitable[None]]) -> None:
    """Await `serve()` until it returns or a stop signal arrives, which cancels the calls still running.

    A cancelled tool call writes its audit record as `cancelled`, and the server's lifespan then closes the
    Infinity client and the embedded sandbox, so the process can exit with status 0.
    """
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                async for signum in signals:
                    logger.info("server.signal_received signal=%s", signal.Signals(signum).name)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(stop_on_signal)
        await serve()
        group.cancel_scope.cancel()
