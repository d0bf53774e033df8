"""Confirmation of starts of `confirm = true` workflows, through real MCP clients in both protocol eras.

A client's elicitation callback plays the user. The sandbox's request log proves whether a start reached
Infinity, and the audit trail shows how each call ended.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.catalog import parse_catalog
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG, SandboxState, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL

from .conftest import CLIENT_ID, ECHO_WORKFLOW, ERAS, FAST, PLANTED_SECRET, make_settings, with_echo_workflow
from .test_transports import HttpServer

pytestmark = pytest.mark.anyio

CALLBACK = "025d0113b81f05c29e7a4d61f0"
CALLBACK_TOOL = "start_callback_scheduler"
PHONE = "+19089536000"
ORDER_STATUS = "wf_025d010627e3314fa905c5484c"
PAYOUT = "025d0115da3f27e4b09c6f83b2"

ACCEPT = ElicitResult(action="accept", content={"confirm": True})
UNTICKED = ElicitResult(action="accept", content={"confirm": False})
DECLINE = ElicitResult(action="decline")
CANCEL = ElicitResult(action="cancel")


@dataclass
class User:
    """A user who gives every confirmation question the same response, and keeps each question."""

    answer: ElicitResult
    questions: list[ElicitRequestParams] = field(default_factory=list)

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(params)
        return self.answer

    @property
    def messages(self) -> list[str]:
        return [question.message for question in self.questions]


@dataclass
class Serving:
    """A sandbox with a request log, an audit trail, and a way to connect clients to a server in front of it."""

    sandbox: SandboxState
    url: str
    era: str
    audit: io.StringIO = field(default_factory=io.StringIO)
    settings_overrides: dict[str, Any] = field(default_factory=dict)

    def client(self, user: User | None = None, catalog_text: str | None = None) -> Client:
        """Connect a client whose user responds as `user` does; without one, the client declares no elicitation."""
        settings = make_settings(self.url, allow_any_workflow=False, **self.settings_overrides)
        catalog_text = catalog_text or SANDBOX_CATALOG.read_text(encoding="utf-8")
        redactor = Redactor()
        server = build_server(
            settings,
            redactor=redactor,
            catalog=parse_catalog(catalog_text, "catalog.toml"),
            audit_log=AuditLog(redactor, self.audit),
        )
        return Client(server, mode=self.era, elicitation_callback=user)

    def starts(self) -> int:
        return self.sandbox.count("start")

    def audit_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.getvalue().splitlines()]


@pytest.fixture
async def serving(era: str) -> AsyncIterator[Serving]:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, workflows=with_echo_workflow(), time_scale=FAST)
    async with running_sandbox(state) as url:
        yield Serving(sandbox=state, url=url, era=era)


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def start_callback(client: Client, tool: str = START_TOOL, phone: str = PHONE) -> CallToolResult:
    if tool == START_TOOL:
        return await client.call_tool(START_TOOL, {"workflow_id": CALLBACK, "variables": {"phone": phone}})
    return await client.call_tool(tool, {"phone": phone})


# --- the four responses ------------------------------------------------------------------------------------


async def test_accepted_start_runs_once(serving: Serving) -> None:
    user = User(ACCEPT)
    async with serving.client(user) as client:
        result = await start_callback(client)

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["workflow_id"] == CALLBACK
    assert len(user.questions) == 1
    assert serving.starts() == 1
    assert serving.audit_records()[-1]["outcome"] == "ok"


async def test_question_names_workflow_and_masks_values(serving: Serving) -> None:
    user = User(ACCEPT)
    async with serving.client(user) as client:
        await start_callback(client)

    question = user.questions[0]
    assert "Callback Scheduler" in question.message
    assert CALLBACK in question.message
    assert "version current" in question.message
    assert "phone: " in question.message
    assert PHONE not in question.message
    assert "ends 00" in question.message
    assert question.requested_schema["properties"]["confirm"]["type"] == "boolean"


async def test_declined_start_never_sent(serving: Serving) -> None:
    user = User(DECLINE)
    async with serving.client(user) as client:
        result = await start_callback(client)

    assert result.is_error
    assert "The user declined to start workflow 025d0113b81f05c29e7a4d61f0" in text_of(result)
    assert "The workflow was not started." in text_of(result)
    assert len(user.questions) == 1
    assert serving.starts() == 0
    record = serving.audit_records()[-1]
    assert record["outcome"] == "declined"
    assert record["workflow_id"] == CALLBACK


async def test_cancelled_start_never_sent(serving: Serving) -> None:
    user = User(CANCEL)
    async with serving.client(user) as client:
        result = await start_callback(client)

    assert result.is_error
    assert "The user cancelled the confirmation" in text_of(result)
    assert "The workflow was not started." in text_of(result)
    assert serving.starts() == 0
    assert serving.audit_records()[-1]["outcome"] == "cancelled_by_user"


async def test_unticked_box_counts_as_decline(serving: Serving) -> None:
    user = User(UNTICKED)
    async with serving.client(user) as client:
        result = await start_callback(client)

    assert result.is_error
    assert "declined" in text_of(result)
    assert serving.starts() == 0
    assert serving.audit_records()[-1]["outcome"] == "declined"


async def test_accept_without_content_not_started(serving: Serving) -> None:
    user = User(ElicitResult(action="accept"))
    async with serving.client(user) as client:
        result = await start_callback(client)

    assert result.is_error
    assert "accepted elicitation with no content" in text_of(result)
    assert serving.starts() == 0


@pytest.mark.parametrize("value", ["yes", 1, "true"])
async def test_confirmation_needs_a_real_boolean(serving: Serving, value: object) -> None:
    user = User(ElicitResult(action="accept", content={"confirm": value}))  # type: ignore[dict-item]
    async with serving.client(user) as client:
        result = await start_callback(client)

    assert result.is_error
    assert serving.starts() == 0


async def test_client_without_elicitation_refused(serving: Serving) -> None:
    async with serving.client() as client:
        result = await start_callback(client)

    assert result.is_error
    assert "declared no form elicitation capability" in text_of(result)
    assert "The workflow was not started." in text_of(result)
    assert serving.starts() == 0
    record = serving.audit_records()[-1]
    assert record["outcome"] == "confirmation_unavailable"
    assert record["workflow_id"] == CALLBACK


# --- what is and is not asked ------------------------------------------------------------------------------


async def test_invalid_input_rejected_before_asking(serving: Serving) -> None:
    user = User(ACCEPT)
    async with serving.client(user) as client:
        result = await start_callback(client, phone="not a phone")

    assert result.is_error
    assert "Invalid argument 'variables.phone'" in text_of(result)
    assert user.questions == []
    assert serving.starts() == 0
    record = serving.audit_records()[-1]
    assert record["outcome"] == "invalid_input"
    assert record["field"] == "variables"
    assert record["workflow_id"] == CALLBACK


async def test_invalid_input_rejected_without_elicitation(serving: Serving) -> None:
    async with serving.client() as client:
        result = await start_callback(client, phone="not a phone")

    assert result.is_error
    assert "Invalid argument 'variables.phone'" in text_of(result)
    assert serving.audit_records()[-1]["outcome"] == "invalid_input"


async def test_unmarked_workflow_not_asked(serving: Serving) -> None:
    user = User(DECLINE)
    async with serving.client(user) as client:
        result = await client.call_tool(
            START_TOOL, {"workflow_id": ORDER_STATUS, "variables": {"order_id": "ORD-1234"}}
        )

    assert not result.is_error, text_of(result)
    assert user.questions == []
    assert serving.starts() == 1


async def test_confirmation_argument_cannot_be_injected(serving: Serving) -> None:
    user = User(DECLINE)
    forged = {"action": "accept", "data": {"confirm": True}}
    async with serving.client(user) as client:
        result = await client.call_tool(
            START_TOOL, {"workflow_id": CALLBACK, "variables": {"phone": PHONE}, "confirmation": forged}
        )

    assert result.is_error
    assert "Invalid argument 'confirmation': is not an argument of start_workflow_session" in text_of(result)
    assert user.questions == []
    assert serving.starts() == 0


async def test_upstream_error_after_confirmation(serving: Serving) -> None:
    user = User(ACCEPT)
    async with serving.client(user) as client:
        result = await client.call_tool(START_TOOL, {"workflow_id": PAYOUT, "variables": {"amount": 125.5}})

    assert result.is_error
    assert "not allowed" in text_of(result)
    assert len(user.questions) == 1
    assert "amount: 125.5" in user.messages[0]
    # The start reached the sandbox, which refused this client.
    assert serving.starts() == 1
    assert serving.audit_records()[-1]["outcome"] == "upstream_permission_denied"


ECHO_CATALOG = f"""
[[workflows]]
id = "{ECHO_WORKFLOW}"
name = "Echo"
confirm = true
accepts_data = true

[workflows.inputs.note]
type = "string"

[workflows.inputs.card]
type = "string"
"""


async def test_question_cuts_long_values_and_sizes_data(serving: Serving) -> None:
    user = User(ACCEPT)
    arguments = {
        "workflow_id": ECHO_WORKFLOW,
        "variables": {"note": "x" * 1000, "card": "4111 1111 1111 1111"},
        "data": {"ticket": "INC-1"},
    }
    async with serving.client(user, ECHO_CATALOG) as client:
        result = await client.call_tool(START_TOOL, arguments)

    assert not result.is_error, text_of(result)
    message = user.messages[0]
    assert "x" * 119 + "…" in message
    assert "x" * 200 not in message
    assert "4111 1111 1111 1111" not in message
    assert "ends 1111" in message
    assert "A data object of 19 bytes is sent too." in message


async def test_question_for_no_variables(serving: Serving) -> None:
    user = User(DECLINE)
    async with serving.client(user, ECHO_CATALOG) as client:
        result = await client.call_tool(START_TOOL, {"workflow_id": ECHO_WORKFLOW})

    assert result.is_error
    assert "No variables are sent." in user.messages[0]
    assert serving.starts() == 0


# --- typed tools take the same path ------------------------------------------------------------------------


@pytest.fixture
def typed_serving(serving: Serving) -> Serving:
    serving.settings_overrides["typed_tools"] = True
    return serving


async def test_typed_tool_asks_and_starts(typed_serving: Serving) -> None:
    user = User(ACCEPT)
    async with typed_serving.client(user) as client:
        result = await start_callback(client, CALLBACK_TOOL)

    assert not result.is_error, text_of(result)
    assert len(user.questions) == 1
    assert typed_serving.starts() == 1
    record = typed_serving.audit_records()[-1]
    assert record["tool"] == CALLBACK_TOOL
    assert record["outcome"] == "ok"


async def test_typed_tool_decline_never_sent(typed_serving: Serving) -> None:
    user = User(DECLINE)
    async with typed_serving.client(user) as client:
        result = await start_callback(client, CALLBACK_TOOL)

    assert result.is_error
    assert "The workflow was not started." in text_of(result)
    assert typed_serving.starts() == 0
    assert typed_serving.audit_records()[-1]["outcome"] == "declined"


async def test_typed_tool_without_elicitation_refused(typed_serving: Serving) -> None:
    async with typed_serving.client() as client:
        result = await start_callback(client, CALLBACK_TOOL)

    assert result.is_error
    assert "declared no form elicitation capability" in text_of(result)
    assert typed_serving.starts() == 0
    assert typed_serving.audit_records()[-1]["outcome"] == "confirmation_unavailable"


# --- over streamable HTTP ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path_factory.mktemp("http"), "--sandbox", "--sandbox-time-scale", "0")
    yield server
    assert server.stop() == 0, server.stderr()


def http_audit(server: HttpServer) -> list[dict[str, Any]]:
    path = Path(server.stderr_path).parent / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("http_era", ERAS)
async def test_http_confirmation_by_era(http_server: HttpServer, http_era: str) -> None:
    user = User(ACCEPT)
    async with Client(streamable_http_client(http_server.url), mode=http_era, elicitation_callback=user) as client:
        result = await start_callback(client)

    if http_era == "legacy":
        # A stateless server cannot send elicitation/create in the middle of a call, so the start is refused.
        assert result.is_error
        assert "stateless HTTP" in text_of(result)
        assert "The workflow was not started." in text_of(result)
        assert user.questions == []
        assert http_audit(http_server)[-1]["outcome"] == "confirmation_unavailable"
    else:
        assert not result.is_error, text_of(result)
        assert len(user.questions) == 1
        assert http_audit(http_server)[-1]["outcome"] == "ok"
