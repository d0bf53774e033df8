"""Retry policy and deadlines of the Infinity client, against the sandbox over loopback HTTP."""

from __future__ import annotations

import datetime
import email.utils
import io
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest
from mcp import Client

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.client import CallBudget, InfinityClient
from mcp_avaya_workflows.errors import (
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    StartOutcomeUnknownError,
    ThrottledError,
    TokenUnavailableError,
    UpstreamUnavailableError,
)
from mcp_avaya_workflows.ratelimit import FairRateLimiter
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.response_headers import retry_after_seconds
from mcp_avaya_workflows.retry import RetryPolicy, is_retryable
from mcp_avaya_workflows.sandbox import Fault, SandboxState, running_sandbox
from mcp_avaya_workflows.sanitizer import StartRequest
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL

from .conftest import CLIENT_ID, EXAMPLE_WORKFLOW, FAST, PLANTED_SECRET, Sandbox, make_settings
from .test_upstream import FAST_RETRY, make_client, make_tokens, start_example

pytestmark = pytest.mark.anyio


@pytest.fixture
async def infinity(sandbox: Sandbox) -> AsyncIterator[InfinityClient]:
    client = make_client(sandbox.url)
    yield client
    await client.aclose()


def _budget(seconds: float) -> CallBudget:
    return CallBudget.starting_now("tester", seconds)


@pytest.mark.parametrize(
    ("error", "endpoint", "retryable"),
    [
        (UpstreamUnavailableError("5xx", endpoint="status", status=503), "status", True),
        (UpstreamUnavailableError("timeout", endpoint="status"), "status", True),
        (RateLimitedError("429", endpoint="status", status=429), "status", True),
        (TokenUnavailableError("down", endpoint="token"), "token", True),
        (InvalidResponseError("malformed", endpoint="status"), "status", False),
        (NotFoundError("404", endpoint="status", status=404), "status", False),
        (AuthenticationError("401", endpoint="token", status=401), "token", False),
        (RequestRejectedError("400", endpoint="start", status=400), "start", False),
        (UpstreamUnavailableError("refused", endpoint="start", request_sent=False), "start", True),
        (UpstreamUnavailableError("5xx", endpoint="start", status=503), "start", False),
        (UpstreamUnavailableError("timeout", endpoint="start"), "start", False),
        (RateLimitedError("429", endpoint="start", status=429), "start", False),
        (ValueError("a bug"), "status", False),
    ],
)
def test_retryable_errors(error: Exception, endpoint: str, retryable: bool) -> None:
    assert is_retryable(error, endpoint) is retryable


def test_policy_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="backoff_initial"):
        RetryPolicy(backoff_initial=5, backoff_max=1)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_status_read_retried(sandbox: Sandbox, infinity: InfinityClient, status: int) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=status, headers={"Retry-After": "0"}, times=2))

    result = await infinity.get_status(session_id)

    assert result.workflow_session_id == session_id
    assert [entry.status for entry in sandbox.state.requests if entry.kind == "status"] == [status, status, 200]


async def test_status_read_retried_after_timeout(sandbox: Sandbox) -> None:
    client = make_client(sandbox.url)
    client._http.timeout = httpx2.Timeout(0.3)
    try:
        session_id = await start_example(client)
        sandbox.state.add_fault(Fault(target="status", status=None, delay_seconds=1.0))
        result = await client.get_status(session_id)
        await anyio.sleep(1.0)  # the sandbox logs the abandoned read only once its delay is over
    finally:
        await client.aclose()

    assert result.workflow_session_id == session_id
    assert sandbox.state.count("status") == 2


async def test_retry_after_honoured(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=429, headers={"Retry-After": "1"}))

    began = time.monotonic()
    await infinity.get_status(session_id)
    elapsed = time.monotonic() - began

    assert elapsed >= 1.0
    attempts = [entry.timestamp for entry in sandbox.state.requests if entry.kind == "status"]
    assert attempts[1] - attempts[0] >= 1.0


async def test_retry_after_past_deadline_not_waited(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=429, headers={"Retry-After": "30"}))

    began = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        await infinity.get_status(session_id, _budget(2))

    assert time.monotonic() - began < 1.0
    assert info.value.retry_after == 30.0
    assert sandbox.state.count("status") == 1


async def test_attempts_bounded(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=503, times=None))

    with pytest.raises(UpstreamUnavailableError):
        await infinity.get_status(session_id)

    assert sandbox.state.count("status") == FAST_RETRY.attempts


async def test_backoff_grows_exponentially(sandbox: Sandbox) -> None:
    policy = RetryPolicy(attempts=4, backoff_initial=0.1, backoff_max=1.0, jitter=0.0)
    client = make_client(sandbox.url, retry_policy=policy)
    try:
        session_id = await start_example(client)
        sandbox.state.add_fault(Fault(target="status", status=503, times=None))
        with pytest.raises(UpstreamUnavailableError):
            await client.get_status(session_id)
    finally:
        await client.aclose()

    times = [entry.timestamp for entry in sandbox.state.requests if entry.kind == "status"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Backoffs of 0.1, 0.2 and 0.4 s; the request itself adds a few milliseconds to each gap, more on a busy machine.
    assert len(gaps) == 3
    for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert backoff <= gap < backoff + 0.3


async def test_deadline_bounds_retries(sandbox: Sandbox) -> None:
    policy = RetryPolicy(attempts=10, backoff_initial=0.3, backoff_max=0.3, jitter=0.0)
    client = make_client(sandbox.url, retry_policy=policy)
    try:
        session_id = await start_example(client)
        sandbox.state.add_fault(Fault(target="status", status=503, times=None))
        began = time.monotonic()
        with pytest.raises(UpstreamUnavailableError):
            await client.get_status(session_id, _budget(1.0))
        elapsed = time.monotonic() - began
    finally:
        await client.aclose()

    assert elapsed < 1.5
    # Attempts at 0, 0.3, 0.6 and, on a fast machine, 0.9 s: far fewer than the 10 the policy allows,
    # because no backoff may end past the deadline.
    assert 2 <= sandbox.state.count("status") <= 4


async def test_slow_status_cut_at_deadline(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=None, delay_seconds=5, times=None))

    began = time.monotonic()
    with pytest.raises(UpstreamUnavailableError, match="deadline"):
        await infinity.get_status(session_id, _budget(1.0))

    assert time.monotonic() - began < 1.8


async def test_start_not_retried_after_timeout(sandbox: Sandbox) -> None:
    client = make_client(sandbox.url)
    client._http.timeout = httpx2.Timeout(0.3)
    sandbox.state.add_fault(Fault(target="start", status=None, delay_seconds=1.0))
    try:
        with pytest.raises(StartOutcomeUnknownError):
            await start_example(client)
        await anyio.sleep(1.0)  # the sandbox finishes the start the client gave up on
    finally:
        await client.aclose()

    assert sandbox.state.count("start") == 1
    assert len(sandbox.state.sessions()) == 1


async def test_start_cut_at_deadline_is_unknown(sandbox: Sandbox, infinity: InfinityClient) -> None:
    sandbox.state.add_fault(Fault(target="start", status=None, delay_seconds=1.5))

    with pytest.raises(StartOutcomeUnknownError):
        await infinity.start_session(StartRequest(EXAMPLE_WORKFLOW, "current", {}), _budget(0.5))
    await anyio.sleep(1.2)  # the sandbox finishes the start the client gave up on

    assert sandbox.state.count("start") == 1
    assert len(sandbox.state.sessions()) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_start_retried_after_refused_connection() -> None:
    state, port = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=FAST), _free_port()
    policy = RetryPolicy(attempts=4, backoff_initial=0.5, backoff_max=0.5, jitter=0.0)
    client = make_client(f"http://127.0.0.1:{port}", retry_policy=policy)
    try:
        async with running_sandbox(state, port=port):
            await client._tokens.get_token()
        # Infinity is down now, so the first start attempt finds no listener; it comes back 0.1 s later.
        started: list[str] = []
        done = anyio.Event()

        async def start() -> None:
            started.append(await start_example(client))
            done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(start)
            await anyio.sleep(0.1)
            async with running_sandbox(state, port=port):
                await done.wait()
    finally:
        await client.aclose()

    assert state.count("start") == 1
    assert len(state.sessions()) == 1
    assert started == [state.sessions()[0].id]


async def test_start_without_token_not_sent() -> None:
    client = make_client(f"http://127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(TokenUnavailableError) as info:
            await start_example(client)
    finally:
        await client.aclose()

    # The token was missing, so the start request was never sent and is not reported as possibly run.
    assert info.value.endpoint == "token"


async def test_token_endpoint_unreachable_is_clear() -> None:
    tokens = make_tokens(f"http://127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(TokenUnavailableError) as info:
            await tokens.get_token()
    finally:
        await tokens.aclose()

    assert "could not get an access token" in info.value.public_message
    assert PLANTED_SECRET not in str(info.value)


async def test_rejected_credentials_not_retried(sandbox: Sandbox) -> None:
    tokens = make_tokens(sandbox.url, secret="wrong-" + PLANTED_SECRET)
    try:
        with pytest.raises(AuthenticationError) as info:
            await tokens.get_token()
    finally:
        await tokens.aclose()

    assert sandbox.state.count("token") == 1
    assert "client ID, client secret and token URL" in info.value.public_message
    assert PLANTED_SECRET not in str(info.value)


async def test_429_slows_the_limiter(sandbox: Sandbox) -> None:
    limiter = FairRateLimiter(6000, 10)
    client = make_client(sandbox.url, limiter=limiter)
    try:
        session_id = await start_example(client)
        sandbox.state.add_fault(Fault(target="status", status=429, headers={"Retry-After": "0"}))
        await client.get_status(session_id)
    finally:
        await client.aclose()

    assert limiter.rate_per_minute < 6000


async def test_saturated_limiter_sends_nothing(sandbox: Sandbox) -> None:
    client = make_client(sandbox.url, limiter=FairRateLimiter(1, 1))
    try:
        await start_example(client)
        began = time.monotonic()
        with pytest.raises(ThrottledError) as info:
            await client.start_session(StartRequest(EXAMPLE_WORKFLOW, "current", {}), _budget(5))
        elapsed = time.monotonic() - began
    finally:
        await client.aclose()

    # The next slot is a minute away, far past the 5 s deadline, so the call fails at once.
    assert elapsed < 0.5
    assert info.value.retry_after is not None
    assert 55 < info.value.retry_after <= 60
    assert info.value.request_sent is False
    assert sandbox.state.count("start") == 1


async def test_token_failure_not_retried_twice(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.revoke_tokens()
    sandbox.state.add_fault(Fault(target="token", status=503, times=None))

    with pytest.raises(TokenUnavailableError):
        await infinity.get_status(session_id)

    # The token request had its attempts; the status read that needed it does not repeat them.
    assert sandbox.state.count("token") == 1 + FAST_RETRY.attempts
    assert sandbox.state.count("status") == 1


async def test_cancelled_start_in_flight_audited_unknown(sandbox: Sandbox) -> None:
    audit = io.StringIO()
    server = build_server(make_settings(sandbox.url), audit_log=AuditLog(Redactor(), audit))
    sandbox.state.add_fault(Fault(target="start", status=None, delay_seconds=1.0))
    async with Client(server) as client:
        with anyio.move_on_after(0.4):
            await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})
        await anyio.sleep(0.8)  # the sandbox finishes the start the client gave up on

    records = [json.loads(line) for line in audit.getvalue().splitlines()]
    assert records[-1]["tool"] == START_TOOL
    assert records[-1]["outcome"] == "start_outcome_unknown"
    assert len(sandbox.state.sessions()) == 1


def _http_date(seconds_from_now: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_from_now)
    return email.utils.format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(("offset", "low", "high"), [(30, 28.0, 30.0), (-30, 0.0, 0.0), (7200, 3600.0, 3600.0)])
def test_retry_after_date_read(offset: float, low: float, high: float) -> None:
    seconds = retry_after_seconds(httpx2.Headers({"Retry-After": _http_date(offset)}))

    assert seconds is not None
    assert low <= seconds <= high


@pytest.mark.parametrize("header", ["soon", "Wed, 99 Foo 2099", ""])
def test_retry_after_garbage_ignored(header: str) -> None:
    assert retry_after_seconds(httpx2.Headers({"Retry-After": header})) is None


async def test_start_not_sent_without_time_to_read(sandbox: Sandbox, infinity: InfinityClient) -> None:
    sandbox.state.add_fault(Fault(target="token", status=None, delay_seconds=1.5))

    with pytest.raises(UpstreamUnavailableError) as info:
        await infinity.start_session(StartRequest(EXAMPLE_WORKFLOW, "current", {}), _budget(2.0))

    # The token came with 0.5 s left, less than the 1 s a start keeps to read its response.
    assert info.value.request_sent is False
    assert not isinstance(info.value, StartOutcomeUnknownError)
    assert sandbox.state.count("start") == 0


async def test_queued_past_deadline_gives_estimate(sandbox: Sandbox) -> None:
    limiter = FairRateLimiter(60, 1)  # one slot a second
    client = make_client(sandbox.url, limiter=limiter)
    try:
        session_id = await start_example(client)
        async with anyio.create_task_group() as group:

            async def pause_soon() -> None:
                await anyio.sleep(0.3)
                limiter.slow_down(5)

            group.start_soon(pause_soon)
            with pytest.raises(ThrottledError) as info:
                # The estimate, 1 s, fits the budget, but a 429 elsewhere pauses the bucket meanwhile.
                await client.get_status(session_id, _budget(1.5))
    finally:
        await client.aclose()

    assert info.value.retry_after is not None
    assert info.value.retry_after > 3
    assert sandbox.state.count("status") == 0


async def test_start_stuck_connecting_not_sent(sandbox: Sandbox) -> None:
    # A listener whose backlog is full: the kernel drops further SYNs, so a connection never opens.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        host, port = listener.getsockname()
        client = InfinityClient(
            base_url=f"http://{host}:{port}",
            tokens=make_tokens(sandbox.url),
            redactor=Redactor(),
            timeout=httpx2.Timeout(5.0),
            retry_policy=FAST_RETRY,
        )
        try:
            with pytest.raises(UpstreamUnavailableError) as info:
                await client.start_session(StartRequest(EXAMPLE_WORKFLOW, "current", {}), _budget(1.0))
        finally:
            await client.aclose()

    # Cut off while connecting, the start provably never left, so it is not reported as possibly run.
    assert not isinstance(info.value, StartOutcomeUnknownError)
    assert info.value.request_sent is False
