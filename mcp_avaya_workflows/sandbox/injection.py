"""Apply the fault that matches a request, at the points of the handler each action needs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from .connection import ConnectionResetResponse, TruncatedResponse
from .faults import WORKFLOW_NEEDED, Fault
from .recording import exchange_of
from .responses import build_fault_response, build_oversized_response
from .state import SandboxState


class RequestFaults:
    """The fault, if any, that applies to one request of kind `kind`.

    A handler takes the fault before it reads the request body: `take` when it has the request's
    workflow, or `take_before_workflow` and later `take` when only the body names the workflow. Each
    returns a response to send at once for a fault that interrupts the request there. The handler
    then reads and checks the request and passes its normal handling to `respond`.
    """

    def __init__(self, state: SandboxState, request: Request, kind: str) -> None:
        self.state = state
        self.request = request
        self.kind = kind
        self.fault: Fault | None = None
        self._decided = False

    async def take_before_workflow(self) -> Response | None:
        """Take a fault that matches whatever the request's workflow, unless the match depends on it."""
        candidate = self.state.take_fault_without_workflow(self.kind)
        if candidate is WORKFLOW_NEEDED:
            return None
        return await self._use(candidate)

    async def take(self, workflow_id: str | None) -> Response | None:
        """Take the first fault matching the request for `workflow_id`, unless a fault was already decided."""
        if self._decided:
            return None
        return await self._use(self.state.take_fault(self.kind, workflow_id))

    async def respond(self, handle: Callable[[], Response]) -> Response:
        """Return the response for the request, where `handle` builds the one it gets without a fault."""
        fault = self.fault
        if fault is None:
            return handle()
        if fault.delay_seconds > 0:
            await asyncio.sleep(fault.delay_seconds)
        if fault.action == "respond":
            return self._respond(fault, handle)
        if fault.action == "reset_after_read":
            handle()
            return ConnectionResetResponse()
        if fault.action == "truncate":
            return TruncatedResponse(handle() if fault.handle_first else build_fault_response(fault))
        if fault.action == "oversized":
            return build_oversized_response(fault)
        # revoke_token revoked the token in `_use`, so the normal handling rejects it.
        return handle()

    async def _use(self, fault: Fault | None) -> Response | None:
        self._decided = True
        self.fault = fault
        if fault is None:
            return None
        exchange_of(self.request).fault = fault.label
        if fault.action == "reset_before_read":
            if fault.delay_seconds > 0:
                await asyncio.sleep(fault.delay_seconds)
            return ConnectionResetResponse()
        if fault.action == "revoke_token":
            self._revoke_presented_token()
        return None

    def _respond(self, fault: Fault, handle: Callable[[], Response]) -> Response:
        if fault.status is None:
            return handle()
        if fault.handle_first:
            handle()
        return build_fault_response(fault)

    def _revoke_presented_token(self) -> None:
        scheme, _, token = self.request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            self.state.revoke_token(token.strip())
