"""Tests of the sandbox's fault injection, driven over real loopback HTTP."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_avaya_workflows.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Fault,
    ModuleScript,
    SandboxState,
    WorkflowFault,
    WorkflowScript,
    load_workflows,
    running_sandbox,
)
from mcp_avaya_workflows.sandbox.connection import TransportNotFoundError, find_transport
from mcp_avaya_workflows.sandbox.faults import MAX_OVERSIZED_BYTES, FaultTarget, fault_from_json
from mcp_avaya_workflows.sandbox.responses import oversized_json

TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"
SESSIONS_PATH = "/api/workflow/v1/workflows/sessions"
SUPPORT = "025d0111114ed33c55731a7cb0"
REFUND = "025d0112a7c4e91b3f6d20a8e5"
LEDGER_SYNC = "025d0118c3e7a2f94b1d6e05a9"
# A workflow only these tests define, to carry standing faults of their own.
SCRIPTED = "025d0119a4b7c2e85f3d0e16b8"
TARGETS: list[FaultTarget] = ["token", "start", "status"]
TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": DEFAULT_CLIENT_ID,
    "client_secret": DEFAULT_CLIENT_SECRET,
}
START_BODY = {"workflowId": SUPPORT, "variables": {"ticket": "T-1"}}
# Status codes the client sees when each target is handled normally.
NORMAL_STATUS = {"token": 200, "start": 201, "status": 200}
# The start of each target's normal response body.
NORMAL_BODY_PREFIX = {"token": '{"access_token":"', "start": '{"session":{"id":"', "status": '{"workflowSessionId":"'}
INCOMPLETE_BODY = re.compile(r"received (\d+) bytes, expected (\d+)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(time_scale=0.01)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[httpx2.AsyncClient]:
    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        yield http


async def fetch_token(http: httpx2.AsyncClient) -> str:
    response = await http.post(TOKEN_PATH, data=TOKEN_FORM)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_session(http: httpx2.AsyncClient, token: str, workflow_id: str = SUPPORT) -> str:
    response = await http.post(SESSIONS_PATH, json={"workflowId": workflow_id}, headers=bearer(token))
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session"]["id"]
    return session_id


def build_request(http: httpx2.AsyncClient, target: str, token: str, session_id: str) -> httpx2.Request:
    """Build the request that a fault with this target matches: a token grant, a start or a status read."""
    if target == "token":
        return http.build_request("POST", TOKEN_PATH, data=TOKEN_FORM)
    if target == "start":
        return http.build_request("POST", SESSIONS_PATH, json=START_BODY, headers=bearer(token))
    return http.build_request("GET", f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))


async def send_for(http: httpx2.AsyncClient, target: str, token: str, session_id: str) -> httpx2.Response:
    return await http.send(build_request(http, target, token, session_id))


async def prepare(http: httpx2.AsyncClient, state: SandboxState) -> tuple[str, str]:
    """Fetch a token and start one session, then empty the request log so it holds only the test's requests."""
    token = await fetch_token(http)
    session_id = await start_session(http, token)
    state.clear_requests()
    return token, session_id


async def read_truncated(http: httpx2.AsyncClient, request: httpx2.Request) -> tuple[httpx2.Response, bytes, str]:
    """Send a request whose response body ends early, and return the response, body bytes and error message."""
    chunks: list[bytes] = []
    response = await http.send(request, stream=True)

    async def read_body() -> None:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)

    try:
        with pytest.raises(httpx2.RemoteProtocolError) as caught:
            await read_body()
    finally:
        await response.aclose()
    return response, b"".join(chunks), str(caught.value)


@contextmanager
def warnings_logged(*names: str) -> Iterator[list[logging.LogRecord]]:
    """Collect the records at WARNING or above that the named loggers handle while the block runs."""
    records: list[logging.LogRecord] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collector(logging.WARNING)
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def scripted_workflows(*faults: WorkflowFault) -> dict[str, WorkflowScript]:
    """Return SUPPORT, which has no faults, and SCRIPTED, which runs 1 s and carries `faults`."""
    scripted = WorkflowScript(
        id=SCRIPTED,
        name="Scripted Faults",
        modules=(ModuleScript(id="mod_wait_001", seconds=1.0, outputs={"done": True}),),
        faults=faults,
    )
    return {SUPPORT: load_workflows()[SUPPORT], SCRIPTED: scripted}


# Connection resets


@pytest.mark.anyio
@pytest.mark.parametrize("target", TARGETS)
async def test_reset_before_read_handles_nothing(
    client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget
) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target=target, action="reset_before_read"))

    with pytest.raises(httpx2.ReadError):
        await send_for(client, target, token, session_id)

    [entry] = state.requests
    assert entry.kind == target
    assert entry.status == 0
    assert entry.fault == "reset_before_read"
    assert entry.client_id is None
    assert entry.body is None
    assert len(state.sessions()) == 1
    assert state.revoke_tokens() == 1


@pytest.mark.anyio
@pytest.mark.parametrize("target", TARGETS)
async def test_server_serves_after_reset(client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target=target, action="reset_before_read"))

    with warnings_logged("uvicorn", "uvicorn.error", "asyncio", "mcp_avaya_workflows") as warnings:
        with pytest.raises(httpx2.ReadError):
            await send_for(client, target, token, session_id)
        after = await send_for(client, target, token, session_id)

    assert after.status_code == NORMAL_STATUS[target]
    assert after.text.startswith(NORMAL_BODY_PREFIX[target])
    assert [entry.status for entry in state.requests] == [0, NORMAL_STATUS[target]]
    assert [entry.fault for entry in state.requests] == ["reset_before_read", None]
    assert [record.getMessage() for record in warnings] == []


@pytest.mark.anyio
async def test_reset_before_read_for_named_workflow(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, _ = await prepare(client, state)
    state.add_fault(Fault(target="start", action="reset_before_read", workflow_id=SUPPORT))

    other = await client.post(SESSIONS_PATH, json={"workflowId": REFUND}, headers=bearer(token))
    with pytest.raises(httpx2.ReadError):
        await client.post(SESSIONS_PATH, json=START_BODY, headers=bearer(token))

    assert other.status_code == 201
    assert [session.workflow_id for session in state.sessions()] == [SUPPORT, REFUND]
    reset = state.requests[-1]
    assert reset.status == 0
    assert reset.fault == "reset_before_read"
    # Matching the workflow needs the body, so the sandbox read it, but it did not authenticate the caller.
    assert reset.body == START_BODY
    assert reset.client_id is None


@pytest.mark.anyio
async def test_reset_before_read_waits_delay(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target="status", action="reset_before_read", delay_seconds=0.2))

    started = time.monotonic()
    with pytest.raises(httpx2.ReadError):
        await send_for(client, "status", token, session_id)

    assert time.monotonic() - started >= 0.2
    assert state.requests[-1].fault == "reset_before_read"


@pytest.mark.anyio
@pytest.mark.parametrize("target", TARGETS)
async def test_reset_after_read_handles_request(
    client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget
) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target=target, action="reset_after_read"))

    with pytest.raises(httpx2.ReadError):
        await send_for(client, target, token, session_id)

    [entry] = state.requests
    assert entry.kind == target
    assert entry.status == 0
    assert entry.fault == "reset_after_read"
    assert entry.client_id == DEFAULT_CLIENT_ID
    assert entry.body == (START_BODY if target == "start" else None)
    assert len(state.sessions()) == (2 if target == "start" else 1)
    assert state.revoke_tokens() == (2 if target == "token" else 1)


@pytest.mark.anyio
async def test_reset_after_read_session_is_readable(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, _ = await prepare(client, state)
    state.add_fault(Fault(target="start", action="reset_after_read"))

    with pytest.raises(httpx2.ReadError):
        await client.post(SESSIONS_PATH, json=START_BODY, headers=bearer(token))

    lost = state.sessions()[-1]
    status = await client.get(f"{SESSIONS_PATH}/{lost.id}", headers=bearer(token))
    assert status.status_code == 200
    assert status.json()["workflowSessionId"] == lost.id
    assert lost.variables == {"ticket": "T-1"}


# Truncated bodies


@pytest.mark.anyio
@pytest.mark.parametrize("target", TARGETS)
async def test_truncate_canned_body(client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget) -> None:
    token, session_id = await prepare(client, state)
    body = "0123456789" * 10
    state.add_fault(Fault(target=target, action="truncate", status=200, body=body))

    response, received, error = await read_truncated(client, build_request(client, target, token, session_id))

    assert response.status_code == 200
    assert response.headers["content-length"] == "100"
    assert received == body[:50].encode()
    assert error == "peer closed connection without sending complete message body (received 50 bytes, expected 100)"
    [entry] = state.requests
    assert entry.kind == target
    assert entry.status == 200
    assert entry.fault == "truncate"
    assert len(state.sessions()) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("target", TARGETS)
async def test_truncate_real_response(client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target=target, action="truncate", handle_first=True))

    response, received, error = await read_truncated(client, build_request(client, target, token, session_id))

    full_length = int(response.headers["content-length"])
    assert response.status_code == NORMAL_STATUS[target]
    assert len(received) == full_length // 2
    assert received.decode().startswith(NORMAL_BODY_PREFIX[target])
    match = INCOMPLETE_BODY.search(error)
    assert match is not None, error
    assert match.groups() == (str(full_length // 2), str(full_length))
    [entry] = state.requests
    assert entry.status == NORMAL_STATUS[target]
    assert entry.fault == "truncate"
    assert len(state.sessions()) == (2 if target == "start" else 1)


@pytest.mark.anyio
async def test_truncate_json_body(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, session_id = await prepare(client, state)
    body = {"workflowSessionId": session_id, "isRunning": False}
    state.add_fault(Fault(target="status", action="truncate", status=200, body=body))

    response, received, _ = await read_truncated(client, build_request(client, "status", token, session_id))

    encoded = json.dumps(body, separators=(",", ":")).encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(encoded))
    assert received == encoded[: len(encoded) // 2]


# Oversized bodies


@pytest.mark.anyio
@pytest.mark.parametrize("target", TARGETS)
async def test_oversized_without_status_200(
    client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget
) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target=target, action="oversized", status=None, size_bytes=4096))

    response = await send_for(client, target, token, session_id)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert len(response.content) == 4096
    assert response.json() == {"padding": "x" * (4096 - len('{"padding":""}'))}
    [entry] = state.requests
    assert entry.kind == target
    assert entry.status == 200
    assert entry.fault == "oversized"
    assert len(state.sessions()) == 1


@pytest.mark.anyio
async def test_oversized_defaults(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target="status", action="oversized", headers={"Retry-After": "3"}))

    response = await send_for(client, "status", token, session_id)

    assert response.status_code == 503
    assert len(response.content) == 2 * 1024 * 1024
    assert response.headers["retry-after"] == "3"
    assert response.json()["padding"] == "x" * (2 * 1024 * 1024 - 14)


@pytest.mark.parametrize("size", [1, 2, 3, 13, 14, 15, 1000])
def test_oversized_json_exact_size(size: int) -> None:
    body = oversized_json(size)
    assert len(body) == size
    json.loads(body)


# Token revocation


@pytest.mark.anyio
@pytest.mark.parametrize("target", ["start", "status"])
async def test_revoke_token_gets_401(client: httpx2.AsyncClient, state: SandboxState, target: FaultTarget) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target=target, action="revoke_token"))

    revoked = await send_for(client, target, token, session_id)
    reused = await send_for(client, target, token, session_id)
    fresh = await send_for(client, target, await fetch_token(client), session_id)

    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"] == 'Bearer realm="avaya", error="invalid_token"'
    assert revoked.json() == {
        "error": "Unauthorized",
        "message": "access token rejected: the token has been revoked",
    }
    assert reused.status_code == 401
    assert fresh.status_code == NORMAL_STATUS[target]
    faulted = state.requests[0]
    assert faulted.kind == target
    assert faulted.status == 401
    assert faulted.fault == "revoke_token"
    assert faulted.client_id is None
    assert len(state.sessions()) == (2 if target == "start" else 1)


@pytest.mark.anyio
async def test_revoke_token_spares_other_tokens(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, session_id = await prepare(client, state)
    other = await fetch_token(client)
    state.add_fault(Fault(target="status", action="revoke_token"))

    revoked = await send_for(client, "status", token, session_id)
    spared = await send_for(client, "status", other, session_id)

    assert revoked.status_code == 401
    assert spared.status_code == 200


@pytest.mark.anyio
async def test_revoke_token_without_bearer(client: httpx2.AsyncClient, state: SandboxState) -> None:
    state.add_fault(Fault(target="start", action="revoke_token"))

    response = await client.post(SESSIONS_PATH, json=START_BODY)

    assert response.status_code == 401
    assert response.json()["message"] == "missing Authorization header; send 'Bearer <access token>'"
    assert state.requests[-1].fault == "revoke_token"


def test_revoke_rejects_foreign_token(state: SandboxState) -> None:
    foreign = SandboxState().issue_token().value
    assert state.revoke_token(foreign) is False
    assert state.revoke_token("not-a-jwt") is False
    assert state.revoke_token(state.issue_token().value) is True


# Handling before the fault


@pytest.mark.anyio
async def test_handle_first_504_after_start(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, _ = await prepare(client, state)
    timeout_body = {"error": "Gateway Timeout", "message": "upstream timed out"}
    state.add_fault(Fault(target="start", status=504, body=timeout_body, handle_first=True))

    response = await client.post(SESSIONS_PATH, json=START_BODY, headers=bearer(token))

    assert response.status_code == 504
    assert response.json() == timeout_body
    assert len(state.sessions()) == 2
    assert state.sessions()[-1].variables == {"ticket": "T-1"}
    [entry] = state.requests
    assert entry.status == 504
    assert entry.fault == "respond"
    assert entry.body == START_BODY
    assert entry.client_id == DEFAULT_CLIENT_ID


@pytest.mark.anyio
async def test_respond_without_handle_first(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, _ = await prepare(client, state)
    state.add_fault(Fault(target="start", status=504))

    response = await client.post(SESSIONS_PATH, json=START_BODY, headers=bearer(token))

    assert response.status_code == 504
    assert len(state.sessions()) == 1


# Repetition and the request log


@pytest.mark.anyio
async def test_times_none_applies_forever(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target="status", status=503, times=None))

    statuses = [(await send_for(client, "status", token, session_id)).status_code for _ in range(5)]
    assert statuses == [503] * 5
    assert state.faults == [(Fault(target="status", status=503, times=None), None)]

    state.clear_faults()
    assert (await send_for(client, "status", token, session_id)).status_code == 200
    assert state.faults == []


@pytest.mark.anyio
async def test_delay_only_logged_as_delay(client: httpx2.AsyncClient, state: SandboxState) -> None:
    state.add_fault(Fault(target="token", status=None, delay_seconds=0.05))

    await fetch_token(client)
    await fetch_token(client)

    assert [entry.fault for entry in state.requests] == ["delay", None]
    assert [entry.status for entry in state.requests] == [200, 200]


@pytest.mark.anyio
async def test_request_log_json_names_fault(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token, session_id = await prepare(client, state)
    state.add_fault(Fault(target="status", action="reset_before_read"))
    with pytest.raises(httpx2.ReadError):
        await send_for(client, "status", token, session_id)

    logged = (await client.get("/_sandbox/requests")).json()

    assert len(logged) == 1
    assert logged[0]["kind"] == "status"
    assert logged[0]["status"] == 0
    assert logged[0]["fault"] == "reset_before_read"


# Faults from the data file


@pytest.mark.anyio
async def test_ledger_sync_status_delayed(client: httpx2.AsyncClient, state: SandboxState) -> None:
    token = await fetch_token(client)
    session_id = await start_session(client, token, LEDGER_SYNC)

    started = time.monotonic()
    response = await client.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3
    assert [(entry.kind, entry.fault) for entry in state.requests] == [
        ("token", None),
        ("start", None),
        ("status", "delay"),
    ]
    assert state.standing_faults == [
        (Fault(target="status", status=None, delay_seconds=0.3, times=None, workflow_id=LEDGER_SYNC), None)
    ]


@pytest.mark.anyio
async def test_data_file_fault_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "workflows.toml"
    path.write_text(
        f'[[workflows]]\nid = "{SCRIPTED}"\nname = "Scripted"\n'
        '[[workflows.modules]]\nid = "mod_a_001"\nseconds = 1\n'
        '[[workflows.faults]]\ntarget = "start"\naction = "reset_after_read"\ntimes = 1\n'
    )
    state = SandboxState(workflows=load_workflows(path), time_scale=0.01)

    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        token = await fetch_token(http)
        with pytest.raises(httpx2.ReadError):
            await http.post(SESSIONS_PATH, json={"workflowId": SCRIPTED}, headers=bearer(token))
        second = await http.post(SESSIONS_PATH, json={"workflowId": SCRIPTED}, headers=bearer(token))

    assert second.status_code == 201
    assert len(state.sessions()) == 2
    assert [entry.fault for entry in state.requests if entry.kind == "start"] == ["reset_after_read", None]
    assert state.standing_faults == []


@pytest.mark.anyio
async def test_data_file_fault_only_its_workflow() -> None:
    state = SandboxState(workflows=scripted_workflows(WorkflowFault(target="start", status=500)), time_scale=0.01)

    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        token = await fetch_token(http)
        other = await http.post(SESSIONS_PATH, json={"workflowId": SUPPORT}, headers=bearer(token))
        scripted = [
            (await http.post(SESSIONS_PATH, json={"workflowId": SCRIPTED}, headers=bearer(token))).status_code
            for _ in range(3)
        ]

    assert other.status_code == 201
    assert scripted == [500, 500, 500]
    assert [session.workflow_id for session in state.sessions()] == [SUPPORT]


@pytest.mark.anyio
async def test_queued_fault_before_data_file() -> None:
    state = SandboxState(workflows=scripted_workflows(WorkflowFault(target="status", status=500)), time_scale=0.01)

    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        token = await fetch_token(http)
        session_id = await start_session(http, token, SCRIPTED)
        state.add_fault(Fault(target="status", status=502))
        first = await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))
        second = await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))

    assert first.status_code == 502
    assert second.status_code == 500


@pytest.mark.anyio
async def test_clear_keeps_data_file_faults() -> None:
    standing = WorkflowFault(target="status", status=500, body={"error": "Internal Server Error"})
    state = SandboxState(workflows=scripted_workflows(standing), time_scale=0.01)

    async with running_sandbox(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        token = await fetch_token(http)
        session_id = await start_session(http, token, SCRIPTED)
        queued = await http.post("/_sandbox/faults", json={"target": "status", "status": 502, "times": None})
        listed = (await http.get("/_sandbox/faults")).json()
        cleared = await http.delete("/_sandbox/faults")
        after_clear = (await http.get("/_sandbox/faults")).json()
        read = await http.get(f"{SESSIONS_PATH}/{session_id}", headers=bearer(token))

    queued_json = {
        "target": "status",
        "status": 502,
        "body": None,
        "headers": {},
        "delay_seconds": 0.0,
        "times": None,
        "workflow_id": None,
        "action": "respond",
        "handle_first": False,
        "size_bytes": 2 * 1024 * 1024,
    }
    standing_json = {
        **queued_json,
        "status": 500,
        "body": {"error": "Internal Server Error"},
        "workflow_id": SCRIPTED,
    }
    assert queued.status_code == 201
    assert queued.json() == queued_json
    assert listed == [
        {**queued_json, "remaining": None, "source": "queue"},
        {**standing_json, "remaining": None, "source": "data_file"},
    ]
    assert cleared.status_code == 204
    assert after_clear == [{**standing_json, "remaining": None, "source": "data_file"}]
    assert read.status_code == 500
    assert read.json() == {"error": "Internal Server Error"}


def test_state_clear_keeps_data_file_faults() -> None:
    state = SandboxState(workflows=scripted_workflows(WorkflowFault(target="start", status=503, times=2)))
    state.add_fault(Fault(target="token"))

    state.clear_faults()

    assert state.faults == []
    assert state.standing_faults == [(Fault(target="start", status=503, times=2, workflow_id=SCRIPTED), 2)]


def test_data_file_faults_per_state() -> None:
    workflows = scripted_workflows(WorkflowFault(target="start", status=503, times=1))
    first = SandboxState(workflows=workflows)
    second = SandboxState(workflows=workflows)

    assert first.take_fault("start", SCRIPTED) is not None
    assert first.standing_faults == []
    assert second.standing_faults == [(Fault(target="start", status=503, times=1, workflow_id=SCRIPTED), 1)]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ('target = "token"', "target"),
        ('target = "status"\nstatus = "503"', "status"),
        ('target = "status"\ntimes = 0', "fault times must be 1 or more"),
        ('target = "start"\naction = "reset_before_read"\nhandle_first = true', "fault handle_first cannot be used"),
        ('target = "start"\nstatus = 503\nworkflow_id = "x"', "workflow_id"),
        ('target = "status"', "a fault needs a status, a delay_seconds above 0, or both"),
    ],
    ids=["token-target", "status-string", "times-zero", "handle-first-reset", "workflow-id", "no-effect"],
)
def test_data_file_rejects_bad_fault(tmp_path: Path, fault: str, message: str) -> None:
    path = tmp_path / "workflows.toml"
    path.write_text(
        '[[workflows]]\nid = "wf_one"\nname = "One"\n'
        '[[workflows.modules]]\nid = "mod_a_001"\nseconds = 1\n'
        f"[[workflows.faults]]\n{fault}\n"
    )
    with pytest.raises(ValueError, match="invalid workflow file") as caught:
        load_workflows(path)
    assert message in str(caught.value)


def test_packaged_data_file_faults() -> None:
    faults = {workflow_id: script.faults for workflow_id, script in load_workflows().items() if script.faults}
    assert faults == {LEDGER_SYNC: (WorkflowFault(target="status", delay_seconds=0.3),)}


# Validation


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"action": "explode"}, "fault action must be one of"),
        ({"action": "reset_before_read", "handle_first": True}, "fault handle_first cannot be used"),
        ({"action": "oversized", "handle_first": True}, "fault handle_first cannot be used"),
        ({"action": "revoke_token", "target": "status", "handle_first": True}, "fault handle_first cannot be used"),
        ({"status": None, "delay_seconds": 0.1, "handle_first": True}, "fault handle_first needs a status"),
        ({"action": "revoke_token", "target": "token"}, "fault target must be 'start' or 'status'"),
        ({"action": "revoke_token"}, "fault target must be 'start' or 'status'"),
        ({"action": "oversized", "size_bytes": 0}, "fault size_bytes must be from 1"),
        ({"action": "oversized", "size_bytes": MAX_OVERSIZED_BYTES + 1}, "fault size_bytes must be from 1"),
        ({"size_bytes": 10}, "fault size_bytes applies only to action 'oversized'"),
        ({"action": "oversized", "body": "x"}, "fault body cannot be used with action 'oversized'"),
        ({"action": "truncate", "status": 200}, "fault body must not be empty"),
        ({"action": "truncate", "status": 200, "body": ""}, "fault body must not be empty"),
        ({"action": "truncate", "status": None, "body": "x"}, "fault status is required"),
        ({"action": "truncate", "handle_first": True, "body": "x"}, "fault body cannot be used"),
        ({"action": "reset_after_read", "body": "x"}, "fault body cannot be used"),
        ({"action": "reset_before_read", "headers": {"X-A": "1"}}, "fault headers cannot be used"),
        ({"handle_first": 1}, "fault field 'handle_first' must be true or false"),
        ({"times": "2"}, "fault field 'times' has the wrong type"),
        ({"times": 0}, "fault times must be 1 or more"),
        ({"size_bytes": True}, "fault field 'size_bytes' has the wrong type"),
        ({"action": 3}, "fault field 'action' has the wrong type"),
        ({"target": "token", "workflow_id": SUPPORT}, "fault workflow_id cannot be used with target 'token'"),
    ],
    ids=[
        "unknown-action",
        "handle-first-reset",
        "handle-first-oversized",
        "handle-first-revoke",
        "handle-first-delay",
        "revoke-token-target",
        "revoke-any-target",
        "size-zero",
        "size-too-large",
        "size-without-oversized",
        "oversized-body",
        "truncate-no-body",
        "truncate-empty-body",
        "truncate-no-status",
        "truncate-real-with-body",
        "reset-with-body",
        "reset-with-headers",
        "handle-first-type",
        "times-type",
        "times-zero",
        "size-type",
        "action-type",
        "token-workflow",
    ],
)
async def test_invalid_fault_names_field(client: httpx2.AsyncClient, fault: dict[str, Any], message: str) -> None:
    response = await client.post("/_sandbox/faults", json=fault)
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"
    assert response.json()["message"].startswith(f"invalid fault: {message}")


@pytest.mark.anyio
async def test_new_fault_fields_over_http(client: httpx2.AsyncClient, state: SandboxState) -> None:
    fault = {"target": "status", "action": "oversized", "status": None, "size_bytes": 100, "times": None}
    response = await client.post("/_sandbox/faults", json=fault)

    assert response.status_code == 201
    assert response.json()["size_bytes"] == 100
    assert state.faults == [(Fault(target="status", action="oversized", status=None, size_bytes=100, times=None), None)]


def test_fault_from_json_new_fields() -> None:
    built = fault_from_json(
        {"target": "start", "action": "truncate", "handle_first": True, "times": None, "workflow_id": SUPPORT}
    )
    assert built == Fault(target="start", action="truncate", handle_first=True, times=None, workflow_id=SUPPORT)


@pytest.mark.parametrize("delay", [math.nan, math.inf, -0.5])
def test_fault_rejects_bad_delay(delay: float) -> None:
    with pytest.raises(ValueError, match="fault delay_seconds must be a finite number of 0 or more"):
        Fault(status=None, delay_seconds=delay)


def test_fault_labels() -> None:
    assert Fault().label == "respond"
    assert Fault(status=None, delay_seconds=1).label == "delay"
    assert Fault(action="reset_before_read", delay_seconds=1).label == "reset_before_read"
    assert Fault(target="start", action="revoke_token").label == "revoke_token"


def test_find_transport_needs_uvicorn() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with pytest.raises(TransportNotFoundError, match="cannot reach the connection's transport"):
        find_transport(receive)
