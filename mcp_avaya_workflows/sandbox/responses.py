"""Error bodies in Avaya's two shapes, and the responses of injected faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response

from .faults import Fault
from .state import SandboxState

# RFC 6749 section 5.1 requires these on every token response.
NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# A 429 from the sandbox always carries Retry-After, with this value when the fault names none.
DEFAULT_RETRY_AFTER_SECONDS = "1"


class ApiError(Exception):
    """An error response of the workflow endpoints: `{"error": <reason phrase>, "message": <detail>}`."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def to_response(self) -> JSONResponse:
        """Build the JSON response."""
        body = {"error": HTTPStatus(self.status).phrase, "message": self.message}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class OAuthError(Exception):
    """An error response of the token endpoint in RFC 6749 form: `error` and `error_description`."""

    def __init__(self, status: int, error: str, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})

    def to_response(self) -> JSONResponse:
        """Build the JSON response."""
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers={**NO_STORE_HEADERS, **self.headers})


async def apply_fault(state: SandboxState, kind: str, workflow_id: str | None) -> Response | None:
    """Apply the first queued fault matching the request, if any.

    Return the fault's response, or None when the request should be handled normally: no fault
    matched, or the matching fault only adds a delay.
    """
    fault = state.take_fault(kind, workflow_id)
    if fault is None:
        return None
    if fault.delay_seconds > 0:
        await asyncio.sleep(fault.delay_seconds)
    if fault.status is None:
        return None
    return build_fault_response(fault)


def build_fault_response(fault: Fault) -> Response:
    """Build the response a fault specifies: a dict body as JSON, a string body byte for byte."""
    assert fault.status is not None
    headers = dict(fault.headers)
    if fault.status == HTTPStatus.TOO_MANY_REQUESTS and not _has_header(headers, "Retry-After"):
        headers["Retry-After"] = DEFAULT_RETRY_AFTER_SECONDS
    if isinstance(fault.body, dict):
        return Response(_encode_json(fault.body), fault.status, headers, media_type="application/json")
    if isinstance(fault.body, str):
        media_type = None if _has_header(headers, "Content-Type") else "text/plain; charset=utf-8"
        return Response(fault.body, fault.status, headers, media_type=media_type)
    return Response(b"", fault.status, headers)


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


def _encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
