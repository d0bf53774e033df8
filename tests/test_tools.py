"""The two tools and the context resources, driven through a real MCP client in both protocol eras."""

from __future__ import annotations

import io
import json
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import EXAMPLE_WORKFLOW, PLANTED_SECRET, Sandbox

pytestmark = pytest.mark.anyio


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def start(client: Client, workflow_id: str = EXAMPLE_WORKFLOW, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(START_TOOL, {"workflow_id": workflow_id, **arguments})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def follow(client: Client, session_id: str, limit: float = 10.0) -> list[dict[str, Any]]:
    """Poll the status tool until the session is terminal and return every status seen."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(limit):
        while True:
            result = await client.call_tool(STATUS_TOOL, {"session_id": session_id})
            assert not result.is_error, text_of(result)
            assert result.structured_content is not None
            seen.append(result.structured_content)
            if result.structured_content["terminal"]:
                return seen
            await anyio.sleep(0.005)


async def test_tools_listed_with_schemas(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {START_TOOL, STATUS_TOOL}
    start_tool, status_tool = tools[START_TOOL], tools[STATUS_TOOL]
    assert start_tool.input_schema["required"] == ["workflow_id"]
    assert set(start_tool.input_schema["properties"]) == {"workflow_id", "version", "variables", "data"}
    version = start_tool.input_schema["properties"]["version"]
    assert version["type"] == "string"
    assert "default" not in version
    assert status_tool.input_schema["required"] == ["session_id"]
    assert start_tool.output_schema is not None
    assert set(start_tool.output_schema["properties"]) == {
        "session_id",
        "workflow_id",
        "workflow_name",
        "status",
        "is_running",
        "terminal",
    }
    assert status_tool.output_schema is not None
    assert set(status_tool.output_schema["properties"]) == {
        "session_id",
        "status",
        "is_running",
        "terminal",
        "current_module",
        "output_variables",
        "masked_variables",
        "dropped_variables",
        "truncated",
        "truncated_variables",
    }


async def test_tool_annotations_honest(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    start_hints, status_hints = tools[START_TOOL].annotations, tools[STATUS_TOOL].annotations
    assert start_hints is not None
    assert status_hints is not None
    assert start_hints.read_only_hint is False
    assert start_hints.open_world_hint is True
    assert start_hints.idempotent_hint is False
    assert start_hints.destructive_hint is True
    assert status_hints.read_only_hint is True
    assert status_hints.idempotent_hint is True


async def test_context_resources_listed_and_read(client: Client) -> None:
    resources = {str(resource.uri): resource for resource in (await client.list_resources()).resources}

    assert set(resources) == {
        "infinity://session-context/voice",
        "infinity://session-context/messaging",
        "infinity://workflows",
    }
    del resources["infinity://workflows"]
    for uri, resource in resources.items():
        assert resource.name
        assert resource.description
        assert resource.mime_type == "application/json"
        contents = (await client.read_resource(uri)).contents
        shape = json.loads(contents[0].text)  # type: ignore[union-attr]
        assert "does not list every field" in shape["note"]
        assert shape["schema"]["type"] == "object"
        assert shape["example"]
    voice = json.loads((await client.read_resource("infinity://session-context/voice")).contents[0].text)  # type: ignore[union-attr]
    assert voice["example"]["source"]["phoneNumber"] == "+19089536000"


async def test_example_workflow_completes_masked(client: Client, sandbox: Sandbox) -> None:
    started = await start(client, variables=EXAMPLE_VARIABLES)

    assert started["workflow_id"] == EXAMPLE_WORKFLOW
    assert started["workflow_name"] == "Payment Failure Assistance"
    assert started["status"] == "RUNNING"
    assert started["is_running"] is True
    assert started["terminal"] is False
    assert started["session_id"].startswith("wfs_")

    statuses = await follow(client, started["session_id"])
    final = statuses[-1]
    assert final["status"] == "COMPLETED"
    assert final["current_module"] is None
    outputs = final["output_variables"]
    assert outputs["customerName"]
    assert outputs["ticketId"]
    assert outputs["resolution"]
    assert outputs["cardNumber"] == "[masked, ends 1111]"
    assert "123-45-6789" not in json.dumps(outputs)
    assert "4111" not in json.dumps(outputs)
    assert {"cardNumber", "ssn", "customerEmail"} <= set(final["masked_variables"])

    recorded = [entry for entry in sandbox.state.requests if entry.kind == "start"]
    assert len(recorded) == 1
    assert recorded[0].body["workflowId"] == EXAMPLE_WORKFLOW
    assert recorded[0].body["variables"] == EXAMPLE_VARIABLES


async def test_running_status_shows_module(client: Client, sandbox: Sandbox) -> None:
    sandbox.state.time_scale = 1.0
    started = await start(client, variables=EXAMPLE_VARIABLES)

    result = await client.call_tool(STATUS_TOOL, {"session_id": started["session_id"]})

    status = result.structured_content
    assert status is not None
    assert status["is_running"] is True
    assert status["terminal"] is False
    assert status["status"] == "RUNNING"
    assert status["current_module"].startswith("mod_")


async def test_no_upstream_id_reaches_client(client: Client, sandbox: Sandbox) -> None:
    started = await start(client, variables=EXAMPLE_VARIABLES)
    statuses = await follow(client, started["session_id"])

    paths = {entry.path for entry in sandbox.state.requests if entry.kind == "status"}
    assert len(paths) == 1
    upstream = sandbox.state.find_session(paths.pop().rsplit("/", 1)[-1])
    assert upstream is not None
    everything = json.dumps([started, *statuses])
    assert upstream.id not in everything
    assert upstream.engagement_id not in everything


async def test_result_has_text_copy(client: Client) -> None:
    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})

    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content


async def test_unknown_status_passed_through(client: Client) -> None:
    started = await start(client, "025d0113b81f05c29e7a4d61f0")

    statuses = await follow(client, started["session_id"])

    assert statuses[-1]["status"] == "ARCHIVED"
    assert statuses[-1]["terminal"] is True
    running = [status for status in statuses if status["is_running"]]
    assert all(status["status"] == "QUEUED" for status in running)


async def test_failed_workflow_terminal(client: Client) -> None:
    started = await start(client, "025d0112a7c4e91b3f6d20a8e5")

    final = (await follow(client, started["session_id"]))[-1]

    assert final["status"] == "FAILED"
    assert final["terminal"] is True
    assert final["is_running"] is False


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "workflow_id"),
        ({"workflow_id": "../admin"}, "workflow_id"),
        ({"workflow_id": 42}, "workflow_id"),
        ({"workflow_id": EXAMPLE_WORKFLOW, "version": "1/../2"}, "version"),
        ({"workflow_id": EXAMPLE_WORKFLOW, "variables": {"nested": {"a": 1}}}, "variables.nested"),
        ({"workflow_id": EXAMPLE_WORKFLOW, "variables": ["a"]}, "variables"),
        ({"workflow_id": EXAMPLE_WORKFLOW, "data": "text"}, "data"),
    ],
)
async def test_invalid_start_names_field(
    client: Client, sandbox: Sandbox, arguments: dict[str, Any], field: str
) -> None:
    result = await client.call_tool(START_TOOL, arguments)

    assert result.is_error
    message = text_of(result)
    assert f"'{field}'" in message
    assert "Traceback" not in message
    assert sandbox.state.count("start") == 0


async def test_invalid_handle_not_found(client: Client) -> None:
    result = await client.call_tool(STATUS_TOOL, {"session_id": "wfs_" + "A" * 40})

    assert result.is_error
    assert "Workflow session not found" in text_of(result)


async def test_tampered_handle_not_found(client: Client) -> None:
    started = await start(client)
    handle = started["session_id"]
    flipped = handle[:-5] + ("B" if handle[-5] != "B" else "C") + handle[-4:]

    result = await client.call_tool(STATUS_TOOL, {"session_id": flipped})

    assert result.is_error
    assert "Workflow session not found" in text_of(result)


async def test_upstream_errors_are_safe(client: Client, sandbox: Sandbox) -> None:
    from mcp_avaya_workflows.sandbox import Fault

    leaked = {"error": "Internal", "message": f"at Object.trigger (/srv/engine.js:12) token={PLANTED_SECRET}"}
    sandbox.state.add_fault(Fault(target="start", status=500, body=leaked))

    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})

    assert result.is_error
    message = text_of(result)
    assert "may or may not have started" in message
    assert "Do not start it again" in message
    assert "engine.js" not in message
    assert PLANTED_SECRET not in message


async def test_unknown_workflow_not_found(client: Client) -> None:
    result = await client.call_tool(START_TOOL, {"workflow_id": "025d0000000000000000000000"})

    assert result.is_error
    assert "no such workflow" in text_of(result)


async def test_forbidden_workflow_explained(client: Client) -> None:
    result = await client.call_tool(START_TOOL, {"workflow_id": "025d0115da3f27e4b09c6f83b2"})

    assert result.is_error
    assert "not allowed" in text_of(result)


async def test_planted_secret_never_leaks(client: Client, sandbox: Sandbox, log_lines: io.StringIO) -> None:
    from mcp_avaya_workflows.sandbox import Fault

    outputs: list[str] = []
    started = await start(client, variables=EXAMPLE_VARIABLES)
    outputs.append(json.dumps(started))
    for status in await follow(client, started["session_id"]):
        outputs.append(json.dumps(status))
    sandbox.state.revoke_tokens()
    sandbox.state.add_fault(
        Fault(target="token", status=401, body={"error": "invalid_client", "error_description": PLANTED_SECRET})
    )
    failed = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})
    outputs.append(text_of(failed))
    bad = await client.call_tool(START_TOOL, {"workflow_id": PLANTED_SECRET + "/x"})
    outputs.append(text_of(bad))

    assert failed.is_error
    assert "could not authenticate" in text_of(failed)
    assert all(PLANTED_SECRET not in output for output in outputs)
    logged = log_lines.getvalue()
    assert "infinity.request" in logged
    assert PLANTED_SECRET not in logged
    # Every access token is a JWT, and JWTs start with the base64 of '{"'.
    assert "eyJ" not in logged
    assert all("eyJ" not in output for output in outputs)


async def test_echoed_credentials_scrubbed(client: Client, sandbox: Sandbox) -> None:
    from mcp_avaya_workflows.sandbox import Fault

    started = await start(client)
    echoed = {
        "isRunning": False,
        "status": "COMPLETED",
        "currentModule": None,
        "outputVariables": {"debug": f"client_secret={PLANTED_SECRET}", "header": "Authorization: Bearer abc.def-123"},
    }
    sandbox.state.add_fault(Fault(target="status", status=200, body=echoed))

    result = await client.call_tool(STATUS_TOOL, {"session_id": started["session_id"]})

    assert result.structured_content is not None
    outputs = result.structured_content["output_variables"]
    assert outputs["debug"] == "client_secret=[redacted]"
    assert outputs["header"] == "Authorization: Bearer [redacted]"
    assert PLANTED_SECRET not in text_of(result)
    assert sorted(result.structured_content["masked_variables"]) == ["debug", "header"]


async def test_middleware_scrubs_results_and_errors() -> None:
    from mcp.server.context import ServerRequestContext
    from mcp.shared.exceptions import MCPError

    from mcp_avaya_workflows.redaction import Redactor
    from mcp_avaya_workflows.server import RedactionMiddleware

    redactor = Redactor()
    redactor.add_secret(PLANTED_SECRET)
    middleware = RedactionMiddleware(redactor)
    context = ServerRequestContext(
        session=None, lifespan_context=None, protocol_version="2026-07-28", method="tools/call"
    )  # type: ignore[arg-type]

    async def leaky_result(_: Any) -> CallToolResult:
        return CallToolResult(content=[{"type": "text", "text": f"token {PLANTED_SECRET}"}])  # type: ignore[list-item]

    async def leaky_error(_: Any) -> CallToolResult:
        raise MCPError(-32603, f"failed with {PLANTED_SECRET}")

    result = await middleware(context, leaky_result)
    with pytest.raises(MCPError) as info:
        await middleware(context, leaky_error)

    assert isinstance(result, CallToolResult)
    assert text_of(result) == "token [redacted]"
    assert PLANTED_SECRET not in info.value.message
    assert "[redacted]" in info.value.message


@pytest.mark.parametrize(
    ("tool", "arguments", "field", "hint"),
    [
        (START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "variabls": {"x": 1}}, "variabls", "Did you mean 'variables'?"),
        (START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "session_id": "x"}, "session_id", "Valid arguments are"),
        (STATUS_TOOL, {"session": "wfs_x"}, "session", "Did you mean 'session_id'?"),
    ],
    ids=["misspelled", "foreign", "status-misspelled"],
)
async def test_unknown_argument_rejected(
    client: Client, sandbox: Sandbox, tool: str, arguments: dict[str, Any], field: str, hint: str
) -> None:
    result = await client.call_tool(tool, arguments)

    assert result.is_error
    assert f"Invalid argument '{field}': is not an argument of {tool}" in text_of(result)
    assert hint in text_of(result)
    assert sandbox.state.count("start") == 0


async def test_free_text_fields_redacted(client: Client, sandbox: Sandbox) -> None:
    from mcp_avaya_workflows.sandbox import Fault

    started = await start(client)
    status_body = {
        "isRunning": True,
        "status": "RUNNING",
        "currentModule": "mod_notify for jane.doe@example.com",
        "outputVariables": {"jane.doe@example.com": "as a key"},
    }
    sandbox.state.add_fault(Fault(target="status", status=200, body=status_body))

    result = await client.call_tool(STATUS_TOOL, {"session_id": started["session_id"]})

    status = result.structured_content
    assert status is not None
    assert status["current_module"] == "mod_notify for j***@example.com"
    assert list(status["output_variables"]) == ["j***@example.com"]
    assert "jane.doe" not in json.dumps(status)


async def test_upstream_session_id_rewritten_everywhere(client: Client, sandbox: Sandbox) -> None:
    from mcp_avaya_workflows.sandbox import Fault

    started = await start(client)
    await client.call_tool(STATUS_TOOL, {"session_id": started["session_id"]})
    status_path = next(entry.path for entry in sandbox.state.requests if entry.kind == "status")
    upstream_id = status_path.rsplit("/", 1)[-1]
    session = sandbox.state.find_session(upstream_id)
    assert session is not None
    echoed = {
        "isRunning": True,
        "status": f"RUNNING {upstream_id}",
        "currentModule": f"mod_{upstream_id.upper()}",
        "outputVariables": {"ref": upstream_id, "engagement": session.engagement_id.upper()},
    }
    sandbox.state.add_fault(Fault(target="status", status=200, body=echoed))

    result = await client.call_tool(STATUS_TOOL, {"session_id": started["session_id"]})

    text = text_of(result).lower()
    assert upstream_id not in text
    assert session.engagement_id not in text
    assert result.structured_content is not None
    assert result.structured_content["status"] == "RUNNING [session id]"
    assert result.structured_content["current_module"] == "mod_[session id]"
    assert result.structured_content["output_variables"]["ref"] == "[session id]"
    assert result.structured_content["output_variables"]["engagement"] == "[engagement id]"


async def test_rate_limit_gives_wait_time(client: Client, sandbox: Sandbox) -> None:
    from mcp_avaya_workflows.sandbox import Fault

    sandbox.state.add_fault(
        Fault(target="start", status=429, body={"error": "Too Many"}, headers={"Retry-After": "12"})
    )

    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})

    assert result.is_error
    assert "rate limiting" in text_of(result)
    assert "wait 12 seconds" in text_of(result)
