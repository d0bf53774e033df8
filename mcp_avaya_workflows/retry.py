"""When and how often to send a request to Infinity again, built on tenacity.

Token requests and status reads are retried after a 429, a 5xx, a timeout or
a connection failure, with exponential backoff and jitter, and after a 429
for as long as `Retry-After` requests. A start is retried only when its connection
failed before any byte was sent. Infinity has no idempotency key, so a start
that may have arrived is never sent twice. Every wait ends before the call's
deadline: a retry whose backoff would pass it is not attempted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential_jitter

from .errors import InvalidResponseError, RateLimitedError, UpstreamError, UpstreamUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts one upstream request gets, and how long to wait between them (in seconds)."""

    attempts: int = 4
    backoff_initial: float = 0.25
    backoff_max: float = 4.0
    # Up to this much random delay is added to each backoff, so that many clients do not retry in step.
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be 1 or more, got {self.attempts}")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("backoff_initial must be above 0 and at most backoff_max")


def is_retryable(exc: BaseException, endpoint: str) -> bool:
    """Tell whether sending the request again is both safe and useful after `exc`."""
    if not isinstance(exc, UpstreamError):
        return False
    if exc.endpoint == "token" and endpoint != "token":
        return False  # the token request had its own retries already, so repeating them would multiply them
    if endpoint == "start":
        # Only a connection that failed before the request was sent proves that Infinity never saw it.
        return isinstance(exc, UpstreamUnavailableError) and not exc.request_sent
    if isinstance(exc, InvalidResponseError):
        return False  # a body that cannot be read is reported, not asked for again
    return isinstance(exc, RateLimitedError | UpstreamUnavailableError)


class _WaitRetryAfter(wait_base):
    """Wait as long as a 429's `Retry-After` requests, and otherwise back off exponentially with jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial, max=policy.backoff_max, jitter=policy.jitter
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(retry_state))


class _StopAtDeadline(stop_base):
    """Stop when the next backoff would end after `deadline`, on the anyio clock."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return anyio.current_time() + retry_state.upcoming_sleep >= self._deadline


def retrying(policy: RetryPolicy, endpoint: str, deadline: float) -> AsyncRetrying:
    """Return a tenacity loop for one request to `endpoint`, bounded by `policy` and by `deadline`."""
    return AsyncRetrying(
        retry=retry_if_exception(lambda exc: is_retryable(exc, endpoint)),
        stop=stop_after_attempt(policy.attempts) | _StopAtDeadline(deadline),
        wait=_WaitRetryAfter(policy),
        sleep=anyio.sleep,
        before_sleep=_log_retry(endpoint),
        reraise=True,
    )


def _log_retry(endpoint: str) -> Any:
    def log(retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        logger.warning(
            "infinity.retry endpoint=%s attempt=%d wait_s=%.2f error=%s",
            endpoint,
            retry_state.attempt_number,
            retry_state.upcoming_sleep,
            exc,
        )

    return log
