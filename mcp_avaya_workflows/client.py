"""Typed async client for Infinity's two Workflow Sessions endpoints.

It accepts every variant that Avaya's documents show. A start may return 201
with a nested `session` or 200 with a flat object. Status values may be ones no
document lists, and optional fields may be missing. Error bodies come in the
workflow shape `{"error", "message"}` or the OAuth shape `{"error",
"error_description"}`, and are parsed for the log but never passed on raw.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
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
    StartOutcomeUnknownError,
    ThrottledError,
    TokenUnavailableError,
    UpstreamError,
    UpstreamUnavailableError,
)
from .ratelimit import FairRateLimiter, SlotTooFarError
from .redaction import Redactor
from .response_headers import request_id_of, retry_after_seconds
from .retry import RetryPolicy, retrying
from .sanitizer import ID_PATTERN, StartRequest
from .strict_json import loads_strict

logger = logging.getLogger(__name__)

SESSIONS_PATH = "/api/workflow/v1/workflows/sessions"
MAX_RESPONSE_BYTES = 1024 * 1024
# Deep enough for any documented response; deeper bodies are rejected before `json.loads` or the recursive
# masking walks them.
MAX_RESPONSE_DEPTH = 32
# No documented field contains a longer integer, and converting thousands of digits takes quadratic time.
MAX_RESPONSE_INTEGER_DIGITS = 64

# Values taken as finished when a response has no `isRunning`: the documented COMPLETED and FAILED, and
# common names for other endings. Any other value is passed through, and `isRunning` decides when present.
TERMINAL_STATUSES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "CANCELED", "ABORTED", "TERMINATED", "ERROR", "EXPIRED", "TIMEOUT"}
)


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


# The budget of a request made without one, outside any tool call.
ANONYMOUS_PRINCIPAL = "anonymous"
DEFAULT_CALL_SECONDS = 30.0


@dataclass
class CallBudget:
    """The principal a tool call acts for, and the deadline by which its upstream requests must finish.

    `deadline` is on the anyio clock. `phase` tracks what the call is waiting for, so that a missed deadline
    can be reported truthfully: a start cut off while queued, fetching a token or opening its connection
    was never sent.
    """

    principal: str
    deadline: float
    phase: Literal["rate_limit", "token", "connect", "send"] = "rate_limit"
    created: float = field(default_factory=anyio.current_time)

    @classmethod
    def starting_now(cls, principal: str, seconds: float) -> CallBudget:
        """Return a budget that ends `seconds` from now."""
        return cls(principal, anyio.current_time() + seconds)

    @property
    def sent(self) -> bool:
        """Whether the first byte of the current request may have been written."""
        return self.phase == "send"

    def remaining(self) -> float:
        """Seconds left before the deadline, never below 0."""
        return max(0.0, self.deadline - anyio.current_time())


class InfinityClient:
    """Start workflow sessions and read their status, with retries, a rate limit, deadlines and bearer auth."""

    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenProvider,
        redactor: Redactor,
        timeout: httpx2.Timeout,
        status_path_suffix: str = "",
        retry_policy: RetryPolicy | None = None,
        limiter: FairRateLimiter | None = None,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        # Created by the first request, see `_http`.
        self._http_client: httpx2.AsyncClient | None = None
        self._closed = False
        self._tokens = tokens
        self._redactor = redactor
        self._status_suffix = status_path_suffix
        self._retry_policy = retry_policy or RetryPolicy()
        self._limiter = limiter or FairRateLimiter(0, 1)
        self._read_timeout = timeout.read if timeout.read is not None else DEFAULT_CALL_SECONDS

    @property
    def _http(self) -> httpx2.AsyncClient:
        """The HTTP client, created on first use.

        Building its TLS context takes tens of milliseconds, so the server responds to its first MCP requests,
        which need no upstream call, without that delay.
        """
        if self._http_client is not None:
            return self._http_client
        if self._closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        self._http_client = httpx2.AsyncClient(base_url=self._base_url, timeout=self._timeout, follow_redirects=False)
        return self._http_client

    async def aclose(self) -> None:
        self._closed = True
        if self._http_client is not None:
            await self._http_client.aclose()
        await self._tokens.aclose()

    async def start_session(self, request: StartRequest, budget: CallBudget | None = None) -> StartedSession:
        """Start a session of `request.workflow_id` and return what Infinity reports about it.

        Without a `budget`, the request is made for an anonymous principal with `DEFAULT_CALL_SECONDS`.
        """
        budget = budget or CallBudget.starting_now(ANONYMOUS_PRINCIPAL, DEFAULT_CALL_SECONDS)
        body: dict[str, Any] = {
            "workflowId": request.workflow_id,
            "version": request.version,
            "variables": request.variables,
        }
        if request.data is not None:
            body["data"] = request.data
        try:
            return _parse_started(await self._call("POST", SESSIONS_PATH, "start", budget, body=body))
        except (UpstreamUnavailableError, InvalidResponseError) as exc:
            # Infinity has no idempotency key, so a start that may have run must not look retryable.
            if exc.endpoint != "start" or not exc.request_sent:
                raise
            logger.error(
                "infinity.start_outcome_unknown workflow_id=%s status=%s request_id=%s error=%s",
                request.workflow_id,
                exc.status,
                exc.request_id,
                exc,
            )
            raise StartOutcomeUnknownError(
                exc.detail, endpoint="start", status=exc.status, request_id=exc.request_id
            ) from None

    async def get_status(self, session_id: str, budget: CallBudget | None = None) -> SessionStatus:
        """Return the status of an Infinity session; `session_id` must already be validated."""
        budget = budget or CallBudget.starting_now(ANONYMOUS_PRINCIPAL, DEFAULT_CALL_SECONDS)
        if not ID_PATTERN.fullmatch(session_id):
            raise InvalidResponseError("The sealed session ID has an unexpected format", endpoint="status")
        path = f"{SESSIONS_PATH}/{session_id}{self._status_suffix}"
        payload = await self._call("GET", path, "status", budget)
        try:
            status = SessionStatus.model_validate(payload)
        except ValidationError:
            raise InvalidResponseError("The status response has fields of the wrong type", endpoint="status") from None
        if status.is_running is None and status.status is None:
            raise InvalidResponseError("The status response has neither isRunning nor status", endpoint="status")
        return status

    async def _call(self, method: str, path: str, endpoint: str, budget: CallBudget, *, body: Any = None) -> Any:
        """Send one request with the retry policy, and return its decoded body by `budget.deadline`."""
        try:
            with anyio.fail_after(budget.remaining()):
                retry_loop = retrying(self._retry_policy, endpoint, budget.deadline - self._reserve(endpoint, budget))
                return await retry_loop(self._attempt, method, path, endpoint, budget, body)
        except TimeoutError:
            raise self._deadline_error(endpoint, budget) from None

    def _reserve(self, endpoint: str, budget: CallBudget) -> float:
        """Return the seconds a request must have left before its deadline to be sent at all.

        A start sent without time to read its response would end as "may have started", so it keeps the read
        timeout in hand, or half its budget when that is shorter. A status read cut short does no harm.
        """
        if endpoint != "start":
            return 0.0
        return min(self._read_timeout, (budget.deadline - budget.created) / 2)

    async def _attempt(self, method: str, path: str, endpoint: str, budget: CallBudget, body: Any) -> Any:
        token = await self._token(budget)
        status, content, headers = await self._send(method, path, endpoint, token, body, budget)
        if status == 401:
            # A token can be revoked or expire early, so fetch a fresh one and send the request once more.
            self._tokens.invalidate(token)
            token = await self._token(budget)
            status, content, headers = await self._send(method, path, endpoint, token, body, budget)
        if status >= 400:
            error = self._error_for(status, content, headers, endpoint)
            if isinstance(error, RateLimitedError):
                self._limiter.slow_down(error.retry_after)
            raise error
        if not 200 <= status < 300:
            # Redirects are not followed, because they could carry the bearer token to another host.
            raise InvalidResponseError(
                "Infinity returned an unexpected status",
                endpoint=endpoint,
                status=status,
                request_id=request_id_of(headers),
            )
        return _decode_json(content, endpoint, status, request_id_of(headers))

    async def _token(self, budget: CallBudget) -> str:
        budget.phase = "token"
        return await self._tokens.get_token(budget.deadline)

    async def _send(
        self, method: str, path: str, endpoint: str, token: str, body: Any, budget: CallBudget
    ) -> tuple[int, bytes, httpx2.Headers]:
        budget.phase = "rate_limit"
        reserve = self._reserve(endpoint, budget)
        try:
            waited = await self._limiter.acquire(budget.principal, budget.deadline - reserve)
        except SlotTooFarError as exc:
            raise ThrottledError(
                f"No rate-limit slot before the call deadline: {exc}",
                endpoint=endpoint,
                retry_after=exc.wait,
                request_sent=False,
            ) from None
        if budget.remaining() < reserve:
            # Too late to start: the slot came, or the token arrived, with no time left to read the response.
            if waited > 0:
                raise self._deadline_error(endpoint, budget)
            raise UpstreamUnavailableError(
                "Too little time was left before the call deadline to send the request",
                endpoint=endpoint,
                request_sent=False,
            )
        budget.phase = "connect"

        async def follow_phase(event: str, info: dict[str, Any]) -> None:
            # httpcore2 reports this event just before it writes the first byte of the request.
            if event.endswith(".send_request_headers.started"):
                budget.phase = "send"

        started = time.perf_counter()
        try:
            async with self._http.stream(
                method,
                path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                extensions={"trace": follow_phase},
            ) as response:
                content = await _read_capped(response, endpoint)
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            raise UpstreamUnavailableError(
                f"The connection failed before the request was sent ({type(exc).__name__})",
                endpoint=endpoint,
                request_sent=False,
            ) from None
        except httpx2.TimeoutException as exc:
            raise UpstreamUnavailableError(
                f"The request timed out ({type(exc).__name__})", endpoint=endpoint, request_sent=budget.sent
            ) from None
        except httpx2.TransportError as exc:
            raise UpstreamUnavailableError(
                f"The connection failed ({type(exc).__name__})", endpoint=endpoint, request_sent=budget.sent
            ) from None
        logger.info(
            "infinity.request endpoint=%s method=%s status=%d duration_ms=%.0f",
            endpoint,
            method,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response.status_code, content, response.headers

    def _deadline_error(self, endpoint: str, budget: CallBudget) -> UpstreamError:
        """Describe a call that reached its deadline, saying whether its request may have been sent."""
        if budget.phase == "rate_limit":
            return ThrottledError(
                "No rate-limit slot came free in time before the call deadline",
                endpoint=endpoint,
                retry_after=self._limiter.estimated_wait(budget.principal),
                request_sent=False,
            )
        if budget.phase == "token":
            return TokenUnavailableError(
                "No access token arrived before the call deadline", endpoint="token", request_sent=False
            )
        if budget.phase == "connect":
            return UpstreamUnavailableError(
                "The connection to Infinity was not open before the call deadline",
                endpoint=endpoint,
                request_sent=False,
            )
        return UpstreamUnavailableError("Infinity did not respond before the call deadline", endpoint=endpoint)

    def _error_for(self, status: int, content: bytes, headers: httpx2.Headers, endpoint: str) -> UpstreamError:
        code, detail = _parse_error_body(content)
        request_id = request_id_of(headers)
        upstream = self._redactor.mask_text(code[:400])[:80] if code else None
        logger.warning(
            "infinity.error endpoint=%s status=%d error=%r detail=%r request_id=%s",
            endpoint,
            status,
            upstream,
            self._redactor.mask_text(detail[:2000])[:200] if detail else None,
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
            return RateLimitedError(summary, retry_after=retry_after_seconds(headers), **common)
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
                request_id=request_id_of(response.headers),
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_json(content: bytes, endpoint: str, status: int, request_id: str | None) -> Any:
    try:
        return _clean_tree(_decode_strict(content), 0)
    except (ValueError, RecursionError) as exc:
        raise InvalidResponseError(
            f"The response body is not valid JSON, or breaks a limit: {exc}",
            endpoint=endpoint,
            status=status,
            request_id=request_id,
        ) from None


def _decode_strict(content: bytes) -> Any:
    return loads_strict(content, max_depth=MAX_RESPONSE_DEPTH, max_integer_digits=MAX_RESPONSE_INTEGER_DIGITS)


def _clean_tree(value: Any, depth: int) -> Any:
    """Bound the nesting depth and replace lone surrogates, which JSON allows but UTF-8 cannot encode."""
    if depth > MAX_RESPONSE_DEPTH:
        raise ValueError("the response is nested too deeply")
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(value) else value
    if isinstance(value, dict):
        return {_clean_tree(key, depth + 1): _clean_tree(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_tree(item, depth + 1) for item in value]
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
        body = _decode_strict(content)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("error")
    detail = body.get("message", body.get("error_description"))
    return (str(code) if code is not None else None, str(detail) if detail is not None else None)
