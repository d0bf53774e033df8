"""The client-side rate limiter: bucket pacing, round-robin fairness between principals, 429 slow-down."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import anyio
import pytest

from mcp_avaya_workflows.ratelimit import MIN_RATE_FRACTION, RECOVERY_SECONDS, FairRateLimiter, SlotTooFarError, _Waiter

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        FairRateLimiter(-1, 5)
    with pytest.raises(ValueError, match="burst"):
        FairRateLimiter(60, 0)


async def test_zero_rate_never_waits() -> None:
    limiter = FairRateLimiter(0, 1)
    began = time.monotonic()
    for _ in range(1000):
        await limiter.acquire("a")

    assert not limiter.enabled
    assert time.monotonic() - began < 0.5


async def test_burst_then_paced() -> None:
    limiter = FairRateLimiter(600, 3)  # 10 a second after a burst of 3
    grants: list[float] = []
    began = time.monotonic()
    for _ in range(6):
        await limiter.acquire("a")
        grants.append(time.monotonic() - began)

    assert all(grant < 0.05 for grant in grants[:3])
    # Three more slots at 0.1 s each.
    assert 0.28 <= grants[-1] < 1.0


async def test_principals_served_round_robin() -> None:
    limiter = FairRateLimiter(1200, 1)  # one slot every 50 ms
    order: list[str] = []

    async def take(principal: str) -> None:
        await limiter.acquire(principal)
        order.append(principal)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(take, "busy")
        await anyio.sleep(0.01)
        for _ in range(2):
            group.start_soon(take, "quiet")

    # "busy" queued 8 requests first, yet "quiet" gets every other slot once it requests one.
    assert order.count("quiet") == 2
    first_quiet = order.index("quiet")
    assert first_quiet <= 2
    assert order[first_quiet + 1] == "busy"
    assert order[first_quiet + 2] == "quiet"


async def test_cancelled_waiter_leaves_queue() -> None:
    limiter = FairRateLimiter(60, 1)  # one slot a second
    await limiter.acquire("a")

    with anyio.move_on_after(0.1):
        await limiter.acquire("a")

    assert limiter.queued == 0


async def test_cancelled_head_wakes_next() -> None:
    limiter = FairRateLimiter(600, 1)  # one slot every 100 ms
    await limiter.acquire("a")
    served = anyio.Event()

    async def patient() -> None:
        await limiter.acquire("b")
        served.set()

    impatient = anyio.CancelScope()

    async def give_up() -> None:
        with impatient:
            await limiter.acquire("a")

    async with anyio.create_task_group() as group:
        group.start_soon(give_up)
        await anyio.sleep(0.01)
        group.start_soon(patient)
        await anyio.sleep(0.01)
        impatient.cancel()
        with anyio.fail_after(1):
            await served.wait()

    assert limiter.queued == 0


async def test_slow_down_pauses_for_retry_after() -> None:
    limiter = FairRateLimiter(60_000, 5)
    limiter.slow_down(0.3)

    began = time.monotonic()
    await limiter.acquire("a")

    assert time.monotonic() - began >= 0.3


def test_slow_down_halves_then_recovers() -> None:
    clock = FakeClock()
    limiter = FairRateLimiter(100, 20, clock=clock)

    limiter.slow_down(None)
    assert limiter.rate_per_minute == pytest.approx(50)

    clock.now += RECOVERY_SECONDS / 4
    assert limiter.rate_per_minute == pytest.approx(75)

    clock.now += RECOVERY_SECONDS
    assert limiter.rate_per_minute == pytest.approx(100)


def test_slow_down_has_a_floor() -> None:
    limiter = FairRateLimiter(100, 20, clock=FakeClock())
    for _ in range(20):
        limiter.slow_down(None)

    assert limiter.rate_per_minute == pytest.approx(100 * MIN_RATE_FRACTION)


def test_disabled_limiter_ignores_429() -> None:
    limiter = FairRateLimiter(0, 1, clock=FakeClock())
    limiter.slow_down(30)

    assert limiter.rate_per_minute == 0


async def test_slot_past_deadline_fails_at_once() -> None:
    limiter = FairRateLimiter(60_000, 5)
    limiter.slow_down(120)

    began = time.monotonic()
    with pytest.raises(SlotTooFarError) as info:
        await limiter.acquire("a", anyio.current_time() + 1)

    assert time.monotonic() - began < 0.1
    assert 119 < info.value.wait < 121
    assert limiter.queued == 0


async def test_wait_estimate_counts_round_robin() -> None:
    clock = FakeClock()
    limiter = FairRateLimiter(60, 1, clock=clock)  # one slot a second
    await limiter.acquire("busy")
    queued = [_queue(limiter, "busy") for _ in range(5)]

    # Round-robin serves one "busy" request before a new "quiet" one, whatever the length of its queue.
    assert limiter.estimated_wait("quiet") == pytest.approx(2)
    assert limiter.estimated_wait("busy") == pytest.approx(6)
    for waiter in queued:
        limiter._leave(waiter)


def _queue(limiter: FairRateLimiter, principal: str) -> Any:
    waiter = _Waiter(principal)
    limiter._queues.setdefault(principal, deque()).append(waiter)
    return waiter


async def test_one_request_right_after_pause() -> None:
    limiter = FairRateLimiter(100, 20)  # 1.2 s a slot once halved
    limiter.slow_down(0.3)

    began = time.monotonic()
    await limiter.acquire("a")

    # Retry-After is the whole wait for the next request; the halved pace applies to the ones after it.
    assert 0.3 <= time.monotonic() - began < 0.6
