"""Tests of the Avaya Infinity sandbox, driven over real loopback HTTP."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from mcp_avaya_workflows.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Fault,
    SandboxState,
    create_app,
    load_workflows,
    running_sandbox,
)
from mcp_avaya_workflows.sandbox.faults import fault_from_json
from mcp_avaya_workflows.sandbox.workflows import compute_status

TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"
JWKS_PATH = "/auth/realms/avaya/protocol/openid-connect/certs"
SESSIONS_PATH = "/api/workflow/v1/workflows/sessions"

PAYMENT = "025d010819f98dbc75776be9666"
SUPPORT = "025d0111114ed33c55731a7cb0"
ORDER_STATUS = "wf_025d010627e3314fa905c5484c"
REFUND = "025d0112a7c4e91b3f6d20a8e5"
CALLBACK = "025d0113b81f05c29e7a4d61f0"
HOLD_QUEUE = "025d0114c92e16d3af8b5e72a1"
PAYOUT = "025d0115da3f27e4b09c6f83b2"
LEDGER_SYNC = "025d0118c3e7a2f94b1d6e05a9"

PAYOUT_CLIENT = "payouts-service"
PAYOUT_SECRET = "payouts-secret"
SESSION_ID = re.compile(r"^028d[a-z0-9]{22}$")
STATUS_FIELDS = {"workflowSessionId", "isRunning", "status", "currentModule", "outputVariables"}


class ManualClock:
    """A monotonic clock that moves only when a test sets it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(time_scale=0.01, extra_clients={PAYOUT_CLIENT: PAYOUT_SECRET})


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[httpx2.AsyncClient]:
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        yield http


async def fetch_token(
    http: httpx2.AsyncClient, client_id: str = DEFAULT_CLIENT_ID, secret: str = DEFAULT_CLIENT_SECRET
) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = await http.post(TOKEN_PATH, data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_session(http: httpx2.AsyncClient, token: str, body: dict[str, Any]) -> str:
    response = await http.post(SESSIONS_PATH, json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session"]["id"]
    return session_id


async def poll_until_finished(http: httpx2.AsyncClient, token: str, session_id: str) -> list[dict[str, Any]]:
    """Poll the status until the session stops running and return every status body seen."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        response = await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if not seen[-1]["isRunning"]:
            return seen
        await anyio.sleep(0.002)
    pytest.fail(f"session {session_id} still running after 2 s: {seen[-1]}")


# Token endpoint


@pytest.mark.anyio
async def test_token_verifies_against_jwks(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "scope": "workflows:execute",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 0
    assert body["scope"] == "workflows:execute"
    assert response.headers["cache-control"] == "no-store"

    jwks = (await client.get(JWKS_PATH)).json()
    token = jwt.decode(body["access_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == jwks["keys"][0]["kid"]
    assert token.claims["iss"] == f"{client.base_url}".rstrip("/") + "/auth/realms/avaya"
    assert token.claims["azp"] == DEFAULT_CLIENT_ID
    assert token.claims["exp"] == token.claims["iat"] + 900
    assert token.claims["scope"] == "workflows:execute"
    assert token.claims["jti"]
    assert token.claims["sub"]
    assert token.claims["aud"]


@pytest.mark.anyio
async def test_token_accepts_basic_auth(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=httpx2.BasicAuth(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "workflows:execute"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        (DEFAULT_CLIENT_ID, "wrong-secret"),
        ("unknown-client", DEFAULT_CLIENT_SECRET),
        (DEFAULT_CLIENT_ID, None),
    ],
)
async def test_token_bad_credentials_401(client: httpx2.AsyncClient, client_id: str, secret: str | None) -> None:
    form = {"grant_type": "client_credentials", "client_id": client_id}
    if secret is not None:
        form["client_secret"] = secret
    response = await client.post(TOKEN_PATH, data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"]


@pytest.mark.anyio
async def test_token_bad_basic_secret_401(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=httpx2.BasicAuth(DEFAULT_CLIENT_ID, "nope"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.anyio
async def test_token_wrong_grant_400(client: httpx2.AsyncClient) -> None:
    form = {"grant_type": "password", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
    response = await client.post(TOKEN_PATH, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.anyio
async def test_token_missing_client_id_400(client: httpx2.AsyncClient) -> None:
    response = await client.post(TOKEN_PATH, data={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.anyio
async def test_token_json_body_400(client: httpx2.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID, "client_secret": "x"}
    response = await client.post(TOKEN_PATH, json=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.anyio
async def test_token_type_lowercase() -> None:
    state = SandboxState(token_type="bearer")
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url) as http:
        form = {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID}
        response = await http.post(TOKEN_PATH, data={**form, "client_secret": DEFAULT_CLIENT_SECRET})
    assert response.json()["token_type"] == "bearer"


# Start endpoint


@pytest.mark.anyio
async def test_start_nested_shape_201(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    response = await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    assert response.status_code == 201
    session = response.json()["session"]
    assert set(session) == {"id", "engagementId", "workflowId", "workflowName"}
    assert SESSION_ID.fullmatch(session["id"])
    assert uuid.UUID(session["engagementId"]).version == 4
    assert session["workflowId"] == SUPPORT
    assert session["workflowName"] == "Customer Support Workflow"


@pytest.mark.anyio
async def test_start_keeps_engagement_id(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    body = {"workflowId": SUPPORT, "engagementId": "eng-42"}
    response = await client.post(SESSIONS_PATH, json=body, headers=bearer(token))
    assert response.json()["session"]["engagementId"] == "eng-42"


@pytest.mark.anyio
async def test_start_flat_shape_200(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    response = await client.post(SESSIONS_PATH, json={"workflowId": ORDER_STATUS}, headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "workflowId", "workflowName"}
    assert SESSION_ID.fullmatch(body["id"])
    assert body["workflowName"] == "Order Status Lookup"


@pytest.mark.anyio
async def test_start_omit_optional(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    response = await client.post(SESSIONS_PATH, json={"workflowId": CALLBACK}, headers=bearer(token))
    assert response.status_code == 201
    assert set(response.json()) == {"session"}
    assert set(response.json()["session"]) == {"id"}


@pytest.mark.anyio
async def test_start_named_version(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    response = await client.post(SESSIONS_PATH, json={"workflowId": PAYMENT, "version": "2"}, headers=bearer(token))
    assert response.status_code == 201


@pytest.mark.anyio
async def test_start_folds_unknown_fields(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    body = {
        "workflowId": PAYMENT,
        "variables": {"page": "payment_failed", "amount": "$80,988.00"},
        "transaction_id": "TX-7731",
        "amount": "$1.00",
    }
    session_id = await start_session(client, token, body)

    recorded = [entry for entry in state.requests if entry.kind == "start"]
    assert recorded[0].body == body
    final = (await poll_until_finished(client, token, session_id))[-1]
    assert final["outputVariables"]["transactionId"] == "TX-7731"
    assert final["outputVariables"]["amount"] == "$80,988.00"


# Status endpoint


@pytest.mark.anyio
async def test_status_on_both_paths(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    session_id = await start_session(client, token, {"workflowId": HOLD_QUEUE})

    plain = await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
    suffixed = await client.get(f"{SESSIONS_PATH}/{session_id}/status", headers=bearer(token))
    assert plain.status_code == 200
    assert suffixed.status_code == 200
    assert set(plain.json()) == STATUS_FIELDS
    assert set(suffixed.json()) == STATUS_FIELDS
    assert plain.json()["workflowSessionId"] == session_id
    assert suffixed.json()["workflowSessionId"] == session_id


@pytest.mark.anyio
async def test_status_progresses_to_completed(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    variables = {
        "page": "payment_failed",
        "amount": "$80,988.00",
        "transaction_id": "TX-1",
        "error": "card_declined",
        "user_id": "u-17",
    }
    session_id = await start_session(client, token, {"workflowId": PAYMENT, "variables": variables})

    seen = await poll_until_finished(client, token, session_id)
    running = [status for status in seen if status["isRunning"]]
    final = seen[-1]
    assert running, "the first poll should find the session running"
    assert all(status["status"] == "RUNNING" for status in running)
    assert all(status["currentModule"].startswith("mod_") for status in running)
    # Each finished module only adds variables, so every poll's outputs contain the previous poll's.
    for earlier, later in itertools.pairwise(seen):
        assert earlier["outputVariables"].items() <= later["outputVariables"].items()
    assert final["status"] == "COMPLETED"
    assert final["currentModule"] is None
    outputs = final["outputVariables"]
    assert outputs["transactionId"] == "TX-1"
    assert outputs["accountId"] == ""
    assert outputs["cardNumber"] == "4111 1111 1111 1111"
    assert outputs["ssn"] == "123-45-6789"
    assert "5555 5555 5555 4444" in outputs["notes"]
    assert {"customerName", "customerEmail", "ticketId", "resolution"} <= set(outputs)


@pytest.mark.anyio
async def test_status_follows_module_timeline() -> None:
    clock = ManualClock()
    state = SandboxState(clock=clock)
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url) as http:
        token = await fetch_token(http)
        session_id = await start_session(http, token, {"workflowId": SUPPORT})
        timeline = []
        for offset in (0.0, 0.5, 1.29, 1.31, 1.6):
            clock.now = 1000.0 + offset
            response = await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
            timeline.append(response.json())

    assert [status["currentModule"] for status in timeline] == [
        "mod_sayCollect_001",
        "mod_routeToAgent_002",
        "mod_routeToAgent_002",
        "mod_wrapUp_003",
        None,
    ]
    assert timeline[1]["outputVariables"] == {"intent": "billing_question", "language": "en-US"}
    assert timeline[3]["outputVariables"]["queue"] == "tier1-billing"
    assert "caseId" not in timeline[3]["outputVariables"]
    assert timeline[4]["outputVariables"]["caseId"] == "CS-88213"


@pytest.mark.anyio
async def test_status_failed_outcome(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    session_id = await start_session(client, token, {"workflowId": REFUND})
    final = (await poll_until_finished(client, token, session_id))[-1]
    assert final["status"] == "FAILED"
    assert final["isRunning"] is False
    assert final["outputVariables"]["errorReason"]


@pytest.mark.anyio
async def test_status_unknown_values() -> None:
    clock = ManualClock()
    state = SandboxState(clock=clock)
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url) as http:
        token = await fetch_token(http)
        session_id = await start_session(http, token, {"workflowId": CALLBACK})
        running = (await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))).json()
        clock.now += 60
        finished = (await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))).json()
    assert running["status"] == "QUEUED"
    assert running["isRunning"] is True
    assert finished["status"] == "ARCHIVED"
    assert finished["isRunning"] is False


@pytest.mark.anyio
async def test_status_never_finishes() -> None:
    clock = ManualClock()
    state = SandboxState(clock=clock)
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url) as http:
        token = await fetch_token(http)
        session_id = await start_session(http, token, {"workflowId": HOLD_QUEUE})
        clock.now += 86_400
        status = (await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))).json()
    assert status["isRunning"] is True
    assert status["currentModule"] == "mod_monitorHold_002"
    assert status["outputVariables"] == {"queuePosition": 4}


# Errors of the workflow endpoints


@pytest.mark.anyio
async def test_status_unknown_session_404(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    response = await client.get(f"{SESSIONS_PATH}/028d0000000000000000000000", headers=bearer(token))
    assert response.status_code == 404
    assert set(response.json()) == {"error", "message"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [{"workflowId": "025d0000000000000000000000"}, {"workflowId": PAYMENT, "version": "9"}],
    ids=["unknown-workflow", "unknown-version"],
)
async def test_start_unknown_target_404(client: httpx2.AsyncClient, body: dict[str, Any]) -> None:
    token = await fetch_token(client)
    response = await client.post(SESSIONS_PATH, json=body, headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["error"] == "Not Found"
    assert response.json()["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"version": "current"},
        {"workflowId": 42},
        {"workflowId": "bad id!"},
        {"workflowId": "x" * 65},
        {"workflowId": PAYMENT, "variables": ["not", "an", "object"]},
        {"workflowId": PAYMENT, "data": "text"},
        {"workflowId": PAYMENT, "version": 2},
        [PAYMENT],
    ],
    ids=[
        "missing",
        "not-string",
        "bad-chars",
        "too-long",
        "variables-list",
        "data-string",
        "version-int",
        "array-body",
    ],
)
async def test_start_malformed_400(client: httpx2.AsyncClient, body: Any) -> None:
    token = await fetch_token(client)
    response = await client.post(SESSIONS_PATH, json=body, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"


@pytest.mark.anyio
async def test_start_invalid_json_400(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    headers = {**bearer(token), "Content-Type": "application/json"}
    response = await client.post(SESSIONS_PATH, content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert state.requests[-1].body is None


@pytest.mark.anyio
async def test_status_malformed_session_id_400(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    response = await client.get(f"{SESSIONS_PATH}/not.a.session/status", headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer not-a-jwt"}],
    ids=["missing", "wrong-scheme", "garbage"],
)
async def test_start_without_valid_token_401(client: httpx2.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(SESSIONS_PATH, json={"workflowId": PAYMENT}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.anyio
async def test_revoked_token_401(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    session_id = await start_session(client, token, {"workflowId": SUPPORT})

    state.revoke_tokens()
    status = await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
    assert status.status_code == 401
    assert "revoked" in status.json()["message"]

    fresh = await fetch_token(client)
    assert (await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(fresh))).status_code == 200


@pytest.mark.anyio
async def test_revoke_over_http_401(client: httpx2.AsyncClient) -> None:
    token = await fetch_token(client)
    revoked = await client.post("/_sandbox/revoke-tokens")
    assert revoked.json() == {"revoked": 1}
    response = await client.post(SESSIONS_PATH, json={"workflowId": PAYMENT}, headers=bearer(token))
    assert response.status_code == 401


@pytest.mark.anyio
async def test_expired_token_401() -> None:
    state = SandboxState(token_ttl_seconds=0)
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url) as http:
        token = await fetch_token(http)
        response = await http.post(SESSIONS_PATH, json={"workflowId": PAYMENT}, headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


@pytest.mark.anyio
async def test_token_from_other_sandbox_401(client: httpx2.AsyncClient) -> None:
    foreign = SandboxState().issue_token().value
    response = await client.post(SESSIONS_PATH, json={"workflowId": PAYMENT}, headers=bearer(foreign))
    assert response.status_code == 401


@pytest.mark.anyio
async def test_restricted_workflow_403(client: httpx2.AsyncClient) -> None:
    default_token = await fetch_token(client)
    payout_token = await fetch_token(client, PAYOUT_CLIENT, PAYOUT_SECRET)

    denied = await client.post(SESSIONS_PATH, json={"workflowId": PAYOUT}, headers=bearer(default_token))
    assert denied.status_code == 403
    assert denied.json()["error"] == "Forbidden"

    session_id = await start_session(client, payout_token, {"workflowId": PAYOUT})
    status = await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(default_token))
    assert status.status_code == 403


# Fault injection


@pytest.mark.anyio
async def test_fault_503_once_then_normal(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    state.add_fault(Fault(target="start", status=503, body={"error": "Service Unavailable", "message": "down"}))

    first = await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    second = await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    assert first.status_code == 503
    assert first.json() == {"error": "Service Unavailable", "message": "down"}
    assert second.status_code == 201
    assert [entry.status for entry in state.requests if entry.kind == "start"] == [503, 201]
    assert state.faults == []


@pytest.mark.anyio
async def test_fault_raw_string_body(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    session_id = await start_session(client, token, {"workflowId": SUPPORT})
    page = "<html><body>502 Bad Gateway</body></html>"
    state.add_fault(Fault(target="status", status=502, body=page, headers={"Content-Type": "text/html"}))
    state.add_fault(Fault(target="status", status=200, body='{"workflowSessionId": ', times=1))

    html = await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
    truncated = await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
    assert html.status_code == 502
    assert html.text == page
    assert html.headers["content-type"] == "text/html"
    assert truncated.status_code == 200
    assert truncated.text == '{"workflowSessionId": '


@pytest.mark.anyio
async def test_fault_429_gets_retry_after(client: httpx2.AsyncClient, state: SandboxState) -> None:
    state.add_fault(Fault(target="any", status=429, body={"error": "Too Many Requests", "message": "slow down"}))
    response = await client.post(TOKEN_PATH, data={"grant_type": "client_credentials"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


@pytest.mark.anyio
async def test_fault_only_for_its_workflow(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    state.add_fault(Fault(target="start", status=500, workflow_id=REFUND))
    other = await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    targeted = await client.post(SESSIONS_PATH, json={"workflowId": REFUND}, headers=bearer(token))
    assert other.status_code == 201
    assert targeted.status_code == 500
    assert targeted.content == b""


@pytest.mark.anyio
async def test_fault_delay_only(client: httpx2.AsyncClient, state: SandboxState) -> None:
    state.add_fault(Fault(target="token", status=None, delay_seconds=0.1))
    started = time.monotonic()
    token = await fetch_token(client)
    assert time.monotonic() - started >= 0.1
    assert token


@pytest.mark.anyio
async def test_faults_over_http(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    fault = {"target": "start", "status": 503, "body": "upstream down", "times": 2}
    queued = await client.post("/_sandbox/faults", json=fault)
    assert queued.status_code == 201

    first = await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    assert first.status_code == 503
    assert first.text == "upstream down"
    assert (await client.get("/_sandbox/faults")).json()[0]["remaining"] == 1

    cleared = await client.delete("/_sandbox/faults")
    assert cleared.status_code == 204
    after = await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    assert after.status_code == 201


@pytest.mark.anyio
@pytest.mark.parametrize(
    "fault",
    [{"target": "nowhere"}, {"status": "503"}, {"times": 0}, {"status": None}, {"colour": "red"}, []],
    ids=["target", "status-type", "times", "no-effect", "unknown-field", "not-object"],
)
async def test_invalid_fault_over_http_400(client: httpx2.AsyncClient, fault: Any) -> None:
    response = await client.post("/_sandbox/faults", json=fault)
    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid fault")


def test_fault_from_json_builds_fault() -> None:
    fault = fault_from_json({"target": "status", "status": 500, "headers": {"X-Trace": "1"}, "workflow_id": SUPPORT})
    assert fault == Fault(target="status", status=500, headers={"X-Trace": "1"}, workflow_id=SUPPORT)


# Request log


@pytest.mark.anyio
async def test_request_log_counts(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    session_id = await start_session(client, token, {"workflowId": SUPPORT})
    await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
    await client.get(f"{SESSIONS_PATH}/{session_id}/status", headers=bearer(token))
    await client.get(JWKS_PATH)
    await client.get("/no/such/path")

    assert state.count("token") == 1
    assert state.count("start") == 1
    assert state.count("status") == 2
    assert state.count("jwks") == 1
    assert state.count("other") == 1
    assert state.count() == 6
    assert state.requests[-1].status == 404
    assert all(entry.client_id == DEFAULT_CLIENT_ID for entry in state.requests[:4])

    logged = (await client.get("/_sandbox/requests")).json()
    assert [entry["kind"] for entry in logged] == ["token", "start", "status", "status", "jwks", "other"]
    assert state.count("control") == 1


@pytest.mark.anyio
async def test_request_log_keeps_no_secrets(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    await client.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
    logged = repr(state.requests)
    assert DEFAULT_CLIENT_SECRET not in logged
    assert token not in logged
    assert state.requests[0].body is None


# Workflow data and running


def test_demo_workflow_ids() -> None:
    workflows = load_workflows()
    assert set(workflows) == {PAYMENT, SUPPORT, ORDER_STATUS, REFUND, CALLBACK, HOLD_QUEUE, PAYOUT, LEDGER_SYNC}
    assert len(PAYMENT) == 27
    for workflow_id in workflows:
        if workflow_id not in (PAYMENT, ORDER_STATUS):
            assert re.fullmatch(r"025[a-z0-9]{23}", workflow_id), workflow_id


def test_load_workflows_from_path(tmp_path: Path) -> None:
    path = tmp_path / "workflows.toml"
    path.write_text(
        '[[workflows]]\nid = "wf_one"\nname = "One"\n'
        '[[workflows.modules]]\nid = "mod_a_001"\nseconds = 1\nset = { greeting = "hi {{variables.who}}" }\n'
    )
    script = load_workflows(path)["wf_one"]
    status = compute_status(script, {"who": "Ana"}, elapsed_seconds=1.0)
    assert status.output_variables == {"greeting": "hi Ana"}
    assert status.is_running is False


@pytest.mark.parametrize(
    "text",
    [
        "[[workflows]]\nid = 'bad id'\nname = 'x'\n[[workflows.modules]]\nid = 'm'\nseconds = 1\n",
        "[[workflows]]\nid = 'x'\nname = 'x'\n",
        "[[workflows]]\nid = 'x'\nname = 'x'\nversions = ['current']\n[[workflows.modules]]\nid = 'm'\nseconds = 1\n",
        "[[workflows]]\nid = 'x'\nname = 'x'\ncolour = 'red'\n[[workflows.modules]]\nid = 'm'\nseconds = 1\n",
        "[[workflows]]\nid = 'x'\nname = 'x'\n[[workflows.modules]]\nid = 'm'\nseconds = 1\n" * 2,
        "not toml = = =",
    ],
    ids=["bad-id", "no-modules", "current-listed", "unknown-key", "duplicate-id", "not-toml"],
)
def test_load_workflows_rejects_bad_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "workflows.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="invalid workflow file"):
        load_workflows(path)


@pytest.mark.anyio
async def test_running_sandbox_rejects_public_host(state: SandboxState) -> None:
    with pytest.raises(ValueError, match="loopback"):
        async with running_sandbox(state, host="0.0.0.0"):  # noqa: S104 - the call must reject this host
            pass


def test_create_app_is_asgi(state: SandboxState) -> None:
    assert callable(create_app(state))


def test_state_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        SandboxState(time_scale=-1)
    with pytest.raises(ValueError, match="token_type"):
        SandboxState(token_type="mac")


@pytest.mark.anyio
async def test_running_sandbox_port_in_use(state: SandboxState) -> None:
    async with running_sandbox(state) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="failed to start"):
            async with running_sandbox(state, port=port):
                pass


def test_serve_forever_keeps_stdout_clean() -> None:
    script = (
        "from mcp_avaya_workflows.sandbox import SandboxState, serve_sandbox_forever\n"
        "serve_sandbox_forever(SandboxState())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        base_url = process.stderr.readline().split()[-1]
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx2.get(base_url + JWKS_PATH, timeout=5).status_code == 200
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=5)
    finally:
        process.kill()
        process.wait()
    assert stdout == ""
    assert process.returncode == 0


def test_outputs_follow_scripted_clock() -> None:
    """With a controlled clock, outputs are empty during the first module and grow as modules finish."""
    now = [100.0]
    state = SandboxState(clock=lambda: now[0])
    session = state.start_session(state.workflows[PAYMENT], "current", {"user_id": "u-1"}, {}, "sandbox-client", "e")

    first = state.session_status(session)
    now[0] += 0.7
    second = state.session_status(session)
    now[0] += 10.0
    final = state.session_status(session)

    assert first.is_running
    assert first.output_variables == {}
    assert first.current_module == "mod_lookupCustomer_001"
    assert second.current_module == "mod_checkPayment_002"
    assert second.output_variables["userId"] == "u-1"
    assert not final.is_running
    assert final.current_module is None
