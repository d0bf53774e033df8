"""A client-side limit on requests to Infinity, shared fairly between principals.

Infinity enforces a quota per tenant (one published figure is 100 requests a
minute with bursts of 20 a second). This limiter keeps one server process
under its share of that quota with a token bucket. When requests queue, free
slots go round-robin to the principals that are waiting, so one busy caller
cannot starve the others. A 429 from Infinity halves the rate and pauses the
bucket for `Retry-After`. One request may go as soon as the pause ends, and the
rate then climbs back to the configured one over `RECOVERY_SECONDS`.

The limit applies per process. Replicas do not share it, so each replica must be
given its own share of the tenant's quota.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

logger = logging.getLogger(__name__)

# After a 429 the rate grows back from its reduced value to the configured one over this many seconds.
RECOVERY_SECONDS = 60.0
# A 429 never pushes the rate below this fraction of the configured one.
MIN_RATE_FRACTION = 0.1


class SlotTooFarError(Exception):
    """Raised when a request would get its slot only after its deadline; `wait` is the estimate in seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the next free slot is about {wait:.1f} s away")
        self.wait = wait


@dataclass(eq=False)
class _Waiter:
    principal: str
    wakeup: anyio.Event = field(default_factory=anyio.Event)


class FairRateLimiter:
    """A token bucket of `burst` slots refilled at `per_minute` a minute, served round-robin by principal.

    `per_minute=0` turns the limit off. `clock` returns seconds on the event loop's clock.
    """

    def __init__(self, per_minute: float, burst: int, *, clock: Callable[[], float] = anyio.current_time) -> None:
        if per_minute < 0:
            raise ValueError(f"per_minute must be 0 (no limit) or more, got {per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be 1 or more, got {burst}")
        self._configured = per_minute / 60.0
        self._rate = self._configured
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated: float | None = None
        self._paused_until = 0.0
        # Principals with queued requests, in serving order; each maps to its own queue.
        self._queues: OrderedDict[str, deque[_Waiter]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self._configured > 0

    @property
    def rate_per_minute(self) -> float:
        """The current rate, which is below the configured one for a while after a 429."""
        self._refill()
        return self._rate * 60.0

    @property
    def queued(self) -> int:
        """Number of requests waiting for a slot."""
        return sum(len(queue) for queue in self._queues.values())

    async def acquire(self, principal: str, deadline: float = math.inf) -> float:
        """Wait for a slot for one request on behalf of `principal`, and return the seconds waited.

        Raises SlotTooFarError at once when the estimated wait ends after `deadline` (on the same clock),
        so that a call does not sit out its whole deadline only to fail. Cancelling the wait gives up its place.
        """
        if not self.enabled:
            return 0.0
        if not self._queues and self._take_now():
            return 0.0
        queued_at = self._clock()
        estimate = self.estimated_wait(principal)
        if queued_at + estimate > deadline:
            raise SlotTooFarError(estimate)
        waiter = _Waiter(principal)
        self._queues.setdefault(principal, deque()).append(waiter)
        try:
            while True:
                if self._head() is waiter:
                    delay = self._time_to_next_slot()
                    if delay <= 0:
                        self._take_now()
                        self._serve(waiter)
                        return self._clock() - queued_at
                    with anyio.move_on_after(delay):
                        await waiter.wakeup.wait()
                else:
                    await waiter.wakeup.wait()
                waiter.wakeup = anyio.Event()
        except BaseException:
            self._leave(waiter)
            raise

    def slow_down(self, retry_after: float | None) -> None:
        """Halve the rate after a 429, and hand out no slot before `retry_after` seconds have passed."""
        if not self.enabled:
            return
        self._refill()
        self._rate = max(self._configured * MIN_RATE_FRACTION, self._rate / 2)
        # Without Retry-After the bucket starts empty. With it, the pause is the wait, and one request may go
        # as soon as it ends, as Retry-After promises.
        self._tokens = 0.0 if retry_after is None else 1.0
        if retry_after is not None:
            self._paused_until = max(self._paused_until, self._clock() + retry_after)
        logger.warning(
            "ratelimit.slowed rate_per_minute=%.1f retry_after_s=%s queued=%d",
            self._rate * 60.0,
            retry_after,
            self.queued,
        )

    def estimated_wait(self, principal: str) -> float:
        """Estimate the seconds until a new request of `principal` would be served, in round-robin order."""
        if not self.enabled:
            return 0.0
        self._refill()
        pause = max(0.0, self._paused_until - self._clock())
        position = len(self._queues.get(principal, ())) + 1
        # Round-robin serves up to `position` requests of every other principal before this one.
        ahead = (
            position - 1 + sum(min(len(queue), position) for other, queue in self._queues.items() if other != principal)
        )
        missing = max(0.0, ahead + 1 - self._tokens)
        return pause + missing / self._rate

    def _refill(self) -> None:
        now = self._clock()
        if self._updated is None:
            self._updated = now
            return
        start = max(self._updated, min(self._paused_until, now))
        elapsed = max(0.0, now - start)
        if self._rate < self._configured:
            self._rate = min(self._configured, self._rate + self._configured * elapsed / RECOVERY_SECONDS)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = now

    def _take_now(self) -> bool:
        self._refill()
        if self._clock() < self._paused_until or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _time_to_next_slot(self) -> float:
        self._refill()
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / self._rate

    def _head(self) -> _Waiter | None:
        for queue in self._queues.values():
            return queue[0]
        return None

    def _serve(self, waiter: _Waiter) -> None:
        """Remove the served head, move its principal to the back of the line, and wake the next head."""
        queue = self._queues.pop(waiter.principal)
        queue.popleft()
        if queue:
            self._queues[waiter.principal] = queue
        self._wake_head()

    def _leave(self, waiter: _Waiter) -> None:
        queue = self._queues.get(waiter.principal)
        if queue is None or waiter not in queue:
            return
        was_head = self._head() is waiter
        queue.remove(waiter)
        if not queue:
            del self._queues[waiter.principal]
        if was_head:
            self._wake_head()

    def _wake_head(self) -> None:
        head = self._head()
        if head is not None:
            head.wakeup.set()
