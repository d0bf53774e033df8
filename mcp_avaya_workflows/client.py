"""Typed async client for Infinity's two Workflow Sessions endpoints.

It tolerates every variant Avaya's documents show: a start returning 201
and a nested `session` or with 200 and a flat object, status values no document
lists, missing optional fields, and error bodies in both the workflow shape
`{"error", "message"}` and the OAuth shape `{"error", "error_description"}`.
Upstream error bodies are parsed for the log and never passed on raw.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .auth import TokenProvider
from .errors import (
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from .redaction import Redactor
from .sanitizer import ID_PATTERN, StartRequest

logger = logging.getLogger(__name__)

SESSIONS_PATH = "/api/workflow/v1/workflows/sessions"
MAX_RESPONSE_BYTES = 1024 * 1024

# Documented terminal values; any other value is passed through and `isRunning` decides.
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED"})


class StartedSession(BaseModel):
    """A session Infinity created. Only `id` is guaranteed."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    engagement_id: str | None = Field(None, alias="engagementId")
    workflow_id: str | None = Field(None, alias="workflowId")
    workflow_name: str | None = Field(None, alias="workflowName")


class SessionStatus(BaseModel):
    """A session's state as the status endpoint reports it."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    workflow_session_id: str | None = Field(None, alias="workflowSessionId")
    is_running: bool | None = Field(None, alias="isRunning")
    status: str | None = None
    current_module: str | None = Field(None, alias="currentModule")
    output_variables: dict[str, Any] = Field(default_factory=dict, alias="outputVariables")

    @property
    def running(self) -> bool:
        """Whether the session still runs: `isRunning` when present, else inferred from `status`."""
        if self.is_running is not None:
            return self.is_running
        return (self.status or "").upper() not in TERMINAL_STATUSES


class InfinityClient:
    """Start workflow sessions and read their status, with bearer auth and one retry after a 401."""

    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenProvider,
        redactor: Redactor,
        timeout: httpx2.Timeout,
        status_path_suffix: str = "",
    ) -> None:
        self._http = httpx2.AsyncClient(base_url=base_url, timeout=timeout, follow_redirects=False)
        self._tokens = tokens
        self._redactor = redactor
        self._status_suffix = status_path_suffix

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._tokens.aclose()

    async def start_session(self, request: StartRequest) -> StartedSession:
        """Start a session of `request.workflow_id` and return what Infinity reports about it."""
        body: dict[str, Any] = {
            "workflowId": request.workflow_id,
            "version": request.version,
            "variables": request.variables,
        }
        if request.data is not None:
            body["data"] = request.data
        payload = await self._call("POST", SESSIONS_PATH, "start", body=body)
        return _parse_started(payload)

    async def get_status(self, session_id: str) -> SessionStatus:
        """Return the status of an Infinity session; `session_id` must already be validated."""
        if not ID_PATTERN.fullmatch(session_id):
            raise InvalidResponseError("The sealed session ID has an unexpected format", endpoint="status")
        path = f"{SESSIONS_PATH}/{session_id}{self._status_suffix}"
        payload = await self._call("GET", path, "status")
        try:
            status = SessionStatus.model_validate(payload)
        except ValidationError:
            raise InvalidResponseError("The status response has fields of the wrong type", endpoint="status") from None
        if status.is_running is None and status.status is None:
            raise InvalidResponseError("The status response has neither isRunning nor status", endpoint="status")
        return status

    async def _call(self, method: str, path: str, endpoint: str, *, body: Any = None) -> Any:
        token = await self._tokens.get_token()
        status, content, headers = await self._send(method, path, endpoint, token, body)
        if status == 401:
            # A token can be revoked or expire early; fetch a fresh one and try exactly once more.
            self._tokens.invalidate(token)
            token = await self._tokens.get_token()
            status, content, headers = await self._send(method, path, endpoint, token, body)
        if status >= 400:
            raise self._error_for(status, content, headers, endpoint)
        if not 200 <= status < 300:
            # Redirects are not followed, because they could carry the bearer token to another host.
            raise InvalidResponseError(
                "Infinity returned an unexpected status",
                endpoint=endpoint,
                status=status,
                request_id=_request_id(headers),
            )
        return _decode_json(content, endpoint, status, _request_id(headers))

    async def _send(
        self, method: str, path: str, endpoint: str, token: str, body: Any
    ) -> tuple[int, bytes, httpx2.Headers]:
        started = time.perf_counter()
        try:
            async with self._http.stream(
                method, path, json=body, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            ) as response:
                content = await _read_capped(response, endpoint)
        except httpx2.TimeoutException as exc:
            raise UpstreamUnavailableError(f"The request timed out ({type(exc).__name__})", endpoint=endpoint) from None
        except httpx2.TransportError as exc:
            raise UpstreamUnavailableError(f"The connection failed ({type(exc).__name__})", endpoint=endpoint) from None
        logger.info(
            "infinity.request endpoint=%s method=%s status=%d duration_ms=%.0f",
            endpoint,
            method,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response.status_code, content, response.headers

    def _error_for(self, status: int, content: bytes, headers: httpx2.Headers, endpoint: str) -> UpstreamError:
        code, detail = _parse_error_body(content)
        request_id = _request_id(headers)
        upstream = self._redactor.scrub_text(code)[:80] if code else None
        logger.warning(
            "infinity.error endpoint=%s status=%d error=%r detail=%r request_id=%s",
            endpoint,
            status,
            upstream,
            self._redactor.scrub_text(detail)[:200] if detail else None,
            request_id,
        )
        common: dict[str, Any] = {
            "endpoint": endpoint,
            "status": status,
            "request_id": request_id,
            "upstream_error": upstream,
        }
        summary = f"Infinity answered HTTP {status}"
        if status == 401:
            return AuthenticationError(f"{summary} after a token refresh", **common)
        if status == 403:
            return PermissionDeniedError(summary, **common)
        if status in (404, 410):
            return NotFoundError(summary, **common)
        if status == 429:
            return RateLimitedError(summary, retry_after=_retry_after(headers), **common)
        if status >= 500:
            return UpstreamUnavailableError(summary, **common)
        return RequestRejectedError(summary, **common)


async def _read_capped(response: httpx2.Response, endpoint: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise InvalidResponseError(
                f"The response is larger than {MAX_RESPONSE_BYTES} bytes",
                endpoint=endpoint,
                status=response.status_code,
                request_id=_request_id(response.headers),
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_json(content: bytes, endpoint: str, status: int, request_id: str | None) -> Any:
    try:
        return json.loads(content, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidResponseError(
            "The response body is not valid JSON", endpoint=endpoint, status=status, request_id=request_id
        ) from None


def _request_id(headers: httpx2.Headers) -> str | None:
    return headers.get("x-request-id") or headers.get("x-correlation-id")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_started(payload: Any) -> StartedSession:
    """Accept both the documented `{"session": {...}}` and the flat shape one document shows."""
    session = payload.get("session") if isinstance(payload, dict) else None
    candidate = session if isinstance(session, dict) else payload
    try:
        started = StartedSession.model_validate(candidate)
    except ValidationError:
        raise InvalidResponseError("The start response has no session ID", endpoint="start") from None
    if not ID_PATTERN.fullmatch(started.id):
        raise InvalidResponseError("The start response has a session ID in an unexpected format", endpoint="start")
    return started


def _parse_error_body(content: bytes) -> tuple[str | None, str | None]:
    """Return (code, detail) from either documented error shape, or (None, None) for anything else."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("error")
    detail = body.get("message", body.get("error_description"))
    return (str(code) if code is not None else None, str(detail) if detail is not None else None)


def _retry_after(headers: httpx2.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
