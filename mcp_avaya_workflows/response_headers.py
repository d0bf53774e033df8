"""Values Infinity's responses carry in headers: the request ID and the Retry-After delay."""

from __future__ import annotations

import math

import httpx2

# Longer waits than an hour are taken as an hour, so a hostile header cannot stall a caller for years.
MAX_RETRY_AFTER_SECONDS = 3600.0


def request_id_of(headers: httpx2.Headers) -> str | None:
    """Return the upstream request ID, for the log, when the response has one."""
    return headers.get("x-request-id") or headers.get("x-correlation-id")


def retry_after_seconds(headers: httpx2.Headers) -> float | None:
    """Return the `Retry-After` delay in seconds, bounded, or None when absent or not a number."""
    value = headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date, or garbage; the caller then gives no wait time
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
