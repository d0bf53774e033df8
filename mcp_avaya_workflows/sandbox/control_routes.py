"""Sandbox-only endpoints under `/_sandbox` that let a test read the request log and steer the sandbox."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import Fault, fault_from_json
from .paths import CONTROL_PREFIX
from .responses import ApiError
from .state import SandboxState


class ControlEndpoints:
    """Handlers for the request log, fault injection and token revocation, which faults never affect."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """Return the Starlette routes under `/_sandbox`."""
        return [
            Route(CONTROL_PREFIX + "/requests", self.list_requests, methods=["GET"]),
            Route(CONTROL_PREFIX + "/requests", self.clear_requests, methods=["DELETE"]),
            Route(CONTROL_PREFIX + "/faults", self.list_faults, methods=["GET"]),
            Route(CONTROL_PREFIX + "/faults", self.add_fault, methods=["POST"]),
            Route(CONTROL_PREFIX + "/faults", self.clear_faults, methods=["DELETE"]),
            Route(CONTROL_PREFIX + "/revoke-tokens", self.revoke_tokens, methods=["POST"]),
        ]

    async def list_requests(self, request: Request) -> Response:
        """List the logged requests, oldest first, without this request, which is logged after it is handled."""
        return JSONResponse([entry.to_json() for entry in self.state.requests])

    async def clear_requests(self, request: Request) -> Response:
        """Empty the request log."""
        self.state.clear_requests()
        return Response(status_code=204)

    async def list_faults(self, request: Request) -> Response:
        """List the queued faults, then the data file's, in matching order, with what each has left.

        `remaining` is the number of requests a fault still applies to, or null for every one, and
        `source` is "queue" for a fault added at run time or "data_file" for one from `[[workflows.faults]]`.
        """
        return JSONResponse(
            [
                {**_fault_to_json(item.fault), "remaining": item.remaining, "source": item.source}
                for item in self.state.pending_faults()
            ]
        )

    async def add_fault(self, request: Request) -> Response:
        """Queue the fault described by the JSON body, whose fields are those of `Fault`."""
        try:
            fault = fault_from_json(json.loads(await request.body()))
        except ValueError as exc:
            return ApiError(400, f"invalid fault: {exc}").to_response()
        self.state.add_fault(fault)
        return JSONResponse(_fault_to_json(fault), status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        """Drop every queued fault, keeping the standing faults of the data file."""
        self.state.clear_faults()
        return Response(status_code=204)

    async def revoke_tokens(self, request: Request) -> Response:
        """Revoke every token issued so far."""
        return JSONResponse({"revoked": self.state.revoke_tokens()})


def _fault_to_json(fault: Fault) -> dict[str, Any]:
    fields = dataclasses.asdict(fault)
    fields["headers"] = dict(fault.headers)
    return fields
