"""The OAuth token provider and the Infinity client against the sandbox over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest
from pydantic import SecretStr

from mcp_avaya_workflows.auth import TokenProvider
from mcp_avaya_workflows.client import InfinityClient
from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES
from mcp_avaya_workflows.errors import (
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
    StartOutcomeUnknownError,
    TokenUnavailableError,
    UpstreamUnavailableError,
)
from mcp_avaya_workflows.ratelimit import FairRateLimiter
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.retry import RetryPolicy
from mcp_avaya_workflows.sandbox import Fault, SandboxState, running_sandbox
from mcp_avaya_workflows.sanitizer import StartRequest

from .conftest import CLIENT_ID, EXAMPLE_WORKFLOW, FAST, PLANTED_SECRET, Sandbox

pytestmark = pytest.mark.anyio

TIMEOUT = httpx2.Timeout(5.0)


# Retries as the server makes them, with backoffs short enough for tests.
FAST_RETRY = RetryPolicy(attempts=4, backoff_initial=0.01, backoff_max=0.05)


def make_tokens(
    url: str, secret: str = PLANTED_SECRET, leeway: int = 60, retry_policy: RetryPolicy = FAST_RETRY
) -> TokenProvider:
    return TokenProvider(
        token_url=url + "/auth/realms/avaya/protocol/openid-connect/token",
        client_id=CLIENT_ID,
        client_secret=SecretStr(secret),
        scope="workflows:execute",
        leeway_seconds=leeway,
        timeout=TIMEOUT,
        redactor=Redactor(),
        retry_policy=retry_policy,
    )


@pytest.fixture
async def infinity(sandbox: Sandbox) -> AsyncIterator[InfinityClient]:
    """An Infinity client for the test's sandbox, closed after the test."""
    client = make_client(sandbox.url)
    yield client
    await client.aclose()


def make_client(
    url: str, suffix: str = "", retry_policy: RetryPolicy = FAST_RETRY, limiter: FairRateLimiter | None = None
) -> InfinityClient:
    return InfinityClient(
        base_url=url,
        tokens=make_tokens(url, retry_policy=retry_policy),
        redactor=Redactor(),
        timeout=TIMEOUT,
        status_path_suffix=suffix,
        retry_policy=retry_policy,
        limiter=limiter,
    )


async def start_example(client: InfinityClient, workflow_id: str = EXAMPLE_WORKFLOW) -> str:
    started = await client.start_session(StartRequest(workflow_id, "current", dict(EXAMPLE_VARIABLES)))
    return started.id


async def test_token_reused_across_calls(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    for _ in range(10):
        await infinity.get_status(session_id)

    assert sandbox.state.count("token") == 1
    assert sandbox.state.count("status") == 10


async def test_concurrent_calls_share_one_token_request(sandbox: Sandbox) -> None:
    sandbox.state.add_fault(Fault(target="token", status=None, delay_seconds=0.2))
    tokens = make_tokens(sandbox.url)
    values: list[str] = []

    async def fetch() -> None:
        values.append(await tokens.get_token())

    try:
        async with anyio.create_task_group() as group:
            for _ in range(25):
                group.start_soon(fetch)
    finally:
        await tokens.aclose()

    assert sandbox.state.count("token") == 1
    assert len(set(values)) == 1


async def test_expiring_token_refreshed() -> None:
    # Tokens that live 30 s are already inside the 60 s refresh leeway, so each call fetches anew.
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, token_ttl_seconds=30, time_scale=FAST)
    async with running_sandbox(state) as url:
        tokens = make_tokens(url, leeway=60)
        try:
            first = await tokens.get_token()
            second = await tokens.get_token()
        finally:
            await tokens.aclose()

    assert first != second
    assert state.count("token") == 2


async def test_revoked_token_refreshed_once(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.revoke_tokens()
    status = await infinity.get_status(session_id)

    assert status.workflow_session_id == session_id
    assert sandbox.state.count("token") == 2
    answered = [entry.status for entry in sandbox.state.requests if entry.kind == "status"]
    assert answered == [401, 200]


async def test_persistent_401_raises_authentication(sandbox: Sandbox, infinity: InfinityClient) -> None:
    sandbox.state.add_fault(Fault(target="status", status=401, body={"error": "Unauthorized"}, times=2))
    session_id = await start_example(infinity)
    with pytest.raises(AuthenticationError):
        await infinity.get_status(session_id)

    assert sandbox.state.count("token") == 2
    assert sandbox.state.count("status") == 2


async def test_bad_secret_raises_authentication(sandbox: Sandbox) -> None:
    tokens = make_tokens(sandbox.url, secret="wrong-secret-value")
    try:
        with pytest.raises(AuthenticationError) as info:
            await tokens.get_token()
    finally:
        await tokens.aclose()

    assert info.value.upstream_error == "invalid_client"
    assert "wrong-secret-value" not in str(info.value)


async def test_lowercase_bearer_accepted() -> None:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, token_type="bearer", time_scale=FAST)
    async with running_sandbox(state) as url:
        client = make_client(url)
        try:
            session_id = await start_example(client)
        finally:
            await client.aclose()

    assert session_id


async def test_token_endpoint_down_is_unavailable(sandbox: Sandbox) -> None:
    sandbox.state.add_fault(Fault(target="token", status=503, body="<html>Service Unavailable</html>", times=None))
    tokens = make_tokens(sandbox.url)
    try:
        with pytest.raises(TokenUnavailableError):
            await tokens.get_token()
    finally:
        await tokens.aclose()

    assert sandbox.state.count("token") == FAST_RETRY.attempts


async def test_token_endpoint_hiccup_retried(sandbox: Sandbox) -> None:
    sandbox.state.add_fault(Fault(target="token", status=503, times=2))
    tokens = make_tokens(sandbox.url)
    try:
        assert await tokens.get_token()
    finally:
        await tokens.aclose()

    assert [entry.status for entry in sandbox.state.requests] == [503, 503, 200]


async def test_nested_start_shape(sandbox: Sandbox, infinity: InfinityClient) -> None:
    started = await infinity.start_session(StartRequest("025d0111114ed33c55731a7cb0", "current", {}))

    assert started.workflow_name == "Customer Support Workflow"
    assert started.engagement_id
    assert sandbox.state.requests[-1].status == 201


async def test_flat_start_shape(sandbox: Sandbox, infinity: InfinityClient) -> None:
    started = await infinity.start_session(StartRequest("wf_025d010627e3314fa905c5484c", "current", {}))

    assert started.workflow_name == "Order Status Lookup"
    assert sandbox.state.requests[-1].status == 200


async def test_start_with_only_session_id(sandbox: Sandbox, infinity: InfinityClient) -> None:
    started = await infinity.start_session(StartRequest("025d0113b81f05c29e7a4d61f0", "current", {}))

    assert started.id
    assert started.workflow_name is None
    assert started.engagement_id is None


@pytest.mark.parametrize("suffix", ["", "/status"])
async def test_both_status_paths(sandbox: Sandbox, suffix: str) -> None:
    client = make_client(sandbox.url, suffix)
    try:
        session_id = await start_example(client)
        status = await client.get_status(session_id)
    finally:
        await client.aclose()

    status_paths = [entry.path for entry in sandbox.state.requests if entry.kind == "status"]
    assert status_paths == [f"/api/workflow/v1/workflows/sessions/{session_id}{suffix}"]
    assert status.workflow_session_id == session_id


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (
            Fault(target="start", status=400, body={"error": "Bad Request", "message": "workflowId is required"}),
            RequestRejectedError,
        ),
        (Fault(target="start", status=403, body={"error": "Forbidden", "message": "no access"}), PermissionDeniedError),
        (Fault(target="start", status=404, body={"error": "Not Found"}), NotFoundError),
        (
            Fault(target="start", status=422, body={"error": "Unprocessable", "message": "channel"}),
            RequestRejectedError,
        ),
        (
            Fault(target="start", status=429, body={"error": "Too Many Requests"}, headers={"Retry-After": "7"}),
            RateLimitedError,
        ),
        (
            Fault(target="start", status=500, body={"error": "Internal", "message": "at Object.<anonymous>"}),
            StartOutcomeUnknownError,
        ),
        (
            Fault(target="start", status=400, body={"error": "invalid_request", "error_description": "bad"}),
            RequestRejectedError,
        ),
        (Fault(target="start", status=502, body="<html><body>Bad gateway</body></html>"), StartOutcomeUnknownError),
        (Fault(target="start", status=201, body='{"session": {"id": '), StartOutcomeUnknownError),
        (Fault(target="start", status=201, body={"session": {"engagementId": "x"}}), StartOutcomeUnknownError),
        (Fault(target="start", status=201, body={"session": {"id": "../../admin"}}), StartOutcomeUnknownError),
        (Fault(target="start", status=201, body='{"session": {"id": NaN}}'), StartOutcomeUnknownError),
    ],
    ids=["400", "403", "404", "422", "429", "500", "oauth-shape", "html-502", "truncated", "no-id", "bad-id", "nan"],
)
async def test_start_errors_mapped(
    sandbox: Sandbox, infinity: InfinityClient, fault: Fault, error: type[Exception]
) -> None:
    sandbox.state.add_fault(fault)
    with pytest.raises(error) as info:
        await start_example(infinity)

    assert "at Object" not in str(info.value)
    if isinstance(info.value, RateLimitedError):
        assert info.value.retry_after == 7.0


async def test_error_codes_kept_for_logs(sandbox: Sandbox, infinity: InfinityClient) -> None:
    sandbox.state.add_fault(
        Fault(target="start", status=400, body={"error": "invalid_request", "error_description": "bad"})
    )
    with pytest.raises(RequestRejectedError) as info:
        await start_example(infinity)

    assert info.value.upstream_error == "invalid_request"
    assert info.value.status == 400
    assert info.value.endpoint == "start"


@pytest.mark.parametrize(
    ("body", "running", "status"),
    [
        (
            {
                "workflowSessionId": "s",
                "isRunning": True,
                "status": "SUSPENDED",
                "currentModule": "m",
                "outputVariables": {},
            },
            True,
            "SUSPENDED",
        ),
        (
            {
                "workflowSessionId": "s",
                "isRunning": False,
                "status": "CANCELLED",
                "currentModule": None,
                "outputVariables": {},
            },
            False,
            "CANCELLED",
        ),
        ({"status": "COMPLETED"}, False, "COMPLETED"),
        ({"status": "WAITING"}, True, "WAITING"),
        ({"isRunning": False}, False, None),
        ({"status": "CANCELLED"}, False, "CANCELLED"),
    ],
    ids=["unknown-running", "unknown-finished", "missing-fields", "unknown-without-flag", "no-status", "cancelled"],
)
async def test_status_variants_accepted(
    sandbox: Sandbox, infinity: InfinityClient, body: dict[str, object], running: bool, status: str | None
) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body=body))
    answer = await infinity.get_status(session_id)

    assert answer.running is running
    assert answer.status == status


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"isRunning": "yes", "status": 3}', "{}", '{"status": "RUNNING", "outputVariables": []}'],
    ids=["text", "array", "wrong-types", "empty", "outputs-not-object"],
)
async def test_malformed_status_rejected(sandbox: Sandbox, infinity: InfinityClient, body: str) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body=body))
    with pytest.raises(InvalidResponseError):
        await infinity.get_status(session_id)


async def test_oversized_body_rejected(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body='{"status": "' + "x" * 2_000_000 + '"}'))
    with pytest.raises(InvalidResponseError) as info:
        await infinity.get_status(session_id)

    assert "larger than" in str(info.value)


async def test_unreachable_host_unavailable() -> None:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=FAST)
    async with running_sandbox(state) as url:
        pass  # the port is free again once the sandbox has stopped
    client = make_client(url)
    try:
        with pytest.raises(UpstreamUnavailableError):
            await start_example(client)
    finally:
        await client.aclose()


async def test_redirect_not_followed(sandbox: Sandbox, infinity: InfinityClient) -> None:
    sandbox.state.add_fault(Fault(target="start", status=302, body="", headers={"Location": "http://127.0.0.2/steal"}))
    with pytest.raises(StartOutcomeUnknownError) as info:
        await start_example(infinity)

    assert info.value.status == 302


async def test_start_timeout_not_retried(sandbox: Sandbox) -> None:
    sandbox.state.add_fault(Fault(target="start", status=None, delay_seconds=1.0))
    client = InfinityClient(
        base_url=sandbox.url,
        tokens=make_tokens(sandbox.url),
        redactor=Redactor(),
        timeout=httpx2.Timeout(0.3),
    )
    try:
        with pytest.raises(StartOutcomeUnknownError) as info:
            await start_example(client)
    finally:
        await client.aclose()

    assert "timed out" in str(info.value)
    with anyio.fail_after(5):
        # The sandbox records the request once its delayed response is written.
        while sandbox.state.count("start") < 1:  # noqa: ASYNC110 - polls another thread's log
            await anyio.sleep(0.05)
    assert sandbox.state.count("start") == 1


async def test_refused_connection_means_not_sent() -> None:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, time_scale=FAST)
    async with running_sandbox(state) as url:
        tokens = make_tokens(url)
        await tokens.get_token()
    # The token is cached, so only the start itself meets the closed port.
    client = InfinityClient(base_url=url, tokens=tokens, redactor=Redactor(), timeout=TIMEOUT)
    try:
        with pytest.raises(UpstreamUnavailableError) as info:
            await start_example(client)
    finally:
        await client.aclose()

    assert not isinstance(info.value, StartOutcomeUnknownError)
    assert info.value.request_sent is False


async def test_deep_status_rejected(sandbox: Sandbox, infinity: InfinityClient) -> None:
    nested: dict[str, object] = {"leaf": 1}
    for _ in range(40):
        nested = {"next": nested}
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body={"isRunning": False, "outputVariables": nested}))
    with pytest.raises(InvalidResponseError) as info:
        await infinity.get_status(session_id)

    assert "nested too deeply" in str(info.value)


async def test_lone_surrogate_replaced(sandbox: Sandbox, infinity: InfinityClient) -> None:
    body = '{"session": {"id": "028d0000000000000000000001", "workflowName": "Pay\\udc00ment"}}'
    sandbox.state.add_fault(Fault(target="start", status=201, body=body))
    started = await infinity.start_session(StartRequest(EXAMPLE_WORKFLOW, "current", {}))

    assert started.workflow_name is not None
    started.workflow_name.encode("utf-8")
    assert started.workflow_name.startswith("Pay")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("inf", None), ("1e40", 3600.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("-3", 0.0)],
    ids=["seconds", "infinite", "huge", "past-http-date", "negative"],
)
async def test_retry_after_bounded(
    sandbox: Sandbox, infinity: InfinityClient, header: str, expected: float | None
) -> None:
    sandbox.state.add_fault(
        Fault(target="start", status=429, body={"error": "Too Many"}, headers={"Retry-After": header})
    )
    with pytest.raises(RateLimitedError) as info:
        await start_example(infinity)

    assert info.value.retry_after == expected


async def test_token_rate_limit_not_authentication(sandbox: Sandbox) -> None:
    sandbox.state.add_fault(
        Fault(target="token", status=429, body={"error": "too_many_requests"}, headers={"Retry-After": "5"})
    )
    tokens = make_tokens(sandbox.url)
    try:
        with pytest.raises(RateLimitedError) as info:
            # Retry-After requests 5 s, which would pass the deadline, so no retry is made.
            await tokens.get_token(anyio.current_time() + 2)
    finally:
        await tokens.aclose()

    assert info.value.endpoint == "token"
    assert info.value.retry_after == 5.0
    assert sandbox.state.count("token") == 1


async def test_oversized_token_response_rejected(sandbox: Sandbox) -> None:
    huge = {"access_token": "x" * 200_000, "token_type": "Bearer", "expires_in": 900}
    sandbox.state.add_fault(Fault(target="token", status=200, body=huge))
    tokens = make_tokens(sandbox.url)
    try:
        with pytest.raises(InvalidResponseError) as info:
            await tokens.get_token()
    finally:
        await tokens.aclose()

    assert "larger than" in str(info.value)
