"""Values Infinity's responses carry in headers: the request ID and the Retry-After delay."""

from __future__ import annotations

import datetime
import email.utils
import math

import httpx2

# Longer waits than an hour are taken as an hour, so a hostile header cannot stall a caller for years.
MAX_RETRY_AFTER_SECONDS = 3600.0


def request_id_of(headers: httpx2.Headers) -> str | None:
    """Return the upstream request ID, for the log, when the response has one."""
    return headers.get("x-request-id") or headers.get("x-correlation-id")


def retry_after_seconds(headers: httpx2.Headers) -> float | None:
    """Return the `Retry-After` delay in seconds, bounded, or None when absent or unreadable.

    RFC 9110 allows a number of seconds or an HTTP date; a date in the past means no wait.
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value)
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)  # RFC 9110 dates are always GMT
    return (moment - datetime.datetime.now(datetime.UTC)).total_seconds()
