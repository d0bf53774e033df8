"""Error bodies in Avaya's two shapes, and the canned and oversized responses of injected faults."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response

from .faults import Fault

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


def build_oversized_response(fault: Fault) -> Response:
    """Build a response whose JSON body is exactly `fault.size_bytes` long, with `fault.status` or 200."""
    status = HTTPStatus.OK if fault.status is None else fault.status
    headers = dict(fault.headers)
    media_type = None if _has_header(headers, "Content-Type") else "application/json"
    return Response(oversized_json(fault.size_bytes), status, headers, media_type=media_type)


def oversized_json(size: int) -> bytes:
    """Return valid JSON of exactly `size` bytes: `{"padding":"xx…"}`, or a string or a digit below 14 bytes."""
    prefix, suffix = b'{"padding":"', b'"}'
    if size >= len(prefix) + len(suffix):
        return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix
    if size >= 2:
        return b'"' + b"x" * (size - 2) + b'"'
    return b"0"


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


def _encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
