"""The workflow catalog: validation at startup, the allowlist, typed inputs, output policy and read-only mode."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.catalog import Catalog, load_catalog, parse_catalog
from mcp_avaya_workflows.errors import ConfigurationError
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG, ModuleScript, SandboxState, WorkflowScript, running_sandbox
from mcp_avaya_workflows.sandbox.workflows import load_workflows
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.settings import load_settings
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, FAST, PLANTED_SECRET, Sandbox, make_settings
from .test_tools import follow, text_of

pytestmark = pytest.mark.anyio

ORDER_WORKFLOW = "wf_025d010627e3314fa905c5484c"
PAYOUT_WORKFLOW = "025d0115da3f27e4b09c6f83b2"
UNLISTED_WORKFLOW = "025d0111114ed33c55731a7cb0"
POLICY_WORKFLOW = "025d0116eb4038c5f1a7d9b4c3"

CATALOG = f"""
[[workflows]]
id = "{ORDER_WORKFLOW}"
name = "Order Status Lookup"
version = "2"
versions = ["current"]

[workflows.inputs.order_id]
type = "string"
required = true
pattern = 'ORD-\\d{{4,10}}'

[workflows.inputs.priority]
type = "string"
enum = ["low", "high"]

[workflows.inputs.quantity]
type = "integer"

[workflows.inputs.gift]
type = "boolean"

[[workflows]]
id = "{POLICY_WORKFLOW}"
name = "Policy Probe"
accepts_data = true
default_output = "drop"

[workflows.outputs]
contactPhone = "reveal"
cardOnFile = "mask"
ticketId = "reveal"
"""


@pytest.fixture
async def policy_sandbox() -> AsyncIterator[Sandbox]:
    """The packaged workflows plus one whose outputs exercise every output policy."""
    workflows = load_workflows()
    workflows[ORDER_WORKFLOW] = workflows[ORDER_WORKFLOW].model_copy(update={"versions": ("2",)})
    workflows[POLICY_WORKFLOW] = WorkflowScript(
        id=POLICY_WORKFLOW,
        name="Policy Probe",
        modules=(
            ModuleScript(
                id="mod_probe_001",
                seconds=0.1,
                outputs={
                    "contactPhone": "+1 908 953 6000",
                    "cardOnFile": "4111 1111 1111 1111",
                    "ticketId": "INC-20417",
                    "internalNote": "escalate quietly",
                },
            ),
        ),
    )
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, workflows=workflows, time_scale=FAST)
    async with running_sandbox(state) as url:
        yield Sandbox(state=state, url=url)


@pytest.fixture
async def catalog_client(policy_sandbox: Sandbox, era: str) -> AsyncIterator[Client]:
    settings = make_settings(policy_sandbox.url, allow_any_workflow=False)
    server = build_server(settings, catalog=parse_catalog(CATALOG, "catalog.toml"))
    async with Client(server, mode=era) as connected:
        yield connected


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    return await client.call_tool(tool, arguments)


# --- validation at startup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[[workflows]\nid = 1", ["catalog.toml is not valid TOML", "line 1"], id="toml-syntax"),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.inputs.x]\nrequird = true',
            ["workflows[0] (id 'wf_1')", "inputs.x.requird", "Did you mean 'required'?"],
            id="typo-in-input",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\nconfrim = true',
            ["workflows[0] (id 'wf_1')", "confrim", "Did you mean 'confirm'?"],
            id="typo-in-entry",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.inputs.x]\ntype = "decimal"',
            ["inputs.x.type", "'string', 'integer', 'number' or 'boolean'", "Use one of the values listed"],
            id="unknown-type",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.inputs.x]\npattern = "([0-9]"',
            ["inputs.x", "not a valid regular expression"],
            id="bad-pattern",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.inputs.x]\ntype = "integer"\nenum = ["a"]',
            ["inputs.x", "enum value 'a' is not of type 'integer'"],
            id="enum-of-wrong-type",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.outputs]\nssn = "hide"',
            ["outputs.ssn", "'reveal', 'mask' or 'drop'"],
            id="unknown-output-policy",
        ),
        pytest.param(
            '[[workflows]]\nid = "../admin"\nname = "A"',
            ["workflows[0] (id '../admin')", "id must be 1 to 64 ASCII letters"],
            id="bad-id",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[[workflows]]\nid = "wf_1"\nname = "B"',
            ["workflows[1] repeats the id 'wf_1'"],
            id="duplicate-id",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"', ["workflows[0] (id 'wf_1')", "name", "Add it to the entry"], id="no-name"
        ),
        pytest.param("", ["lists no workflows"], id="empty"),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\nconfirm = "yes"',
            ["confirm must be true or false", "Write it without quotes"],
            id="quoted-boolean",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.inputs.x]\nmax_length = "40"',
            ["inputs.x.max_length must be a whole number"],
            id="quoted-integer",
        ),
        pytest.param(
            '[[workflow]]\nid = "wf_1"', ["workflow is not a known key", "Did you mean 'workflows'?"], id="top-typo"
        ),
        pytest.param(
            '[workflows]\nid = "wf_1"\nname = "A"',
            ["workflows must be an array of tables", "[[workflows]], with double brackets"],
            id="single-brackets",
        ),
        pytest.param(
            '[[workflows]]\nid = "wf_1"\nname = "A"\n[workflows.inputs."__proto__"]\ntype = "string"',
            ["inputs", "'__proto__' is a reserved JavaScript property name"],
            id="prototype-input",
        ),
    ],
)
def test_catalog_problems_name_file_entry_and_fix(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_catalog(text, "catalog.toml")

    message = str(raised.value)
    assert "catalog.toml" in message
    for fragment in expected:
        assert fragment in message


def test_catalog_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_bytes(b"\xef\xbb\xbf" + CATALOG.encode())

    assert ORDER_WORKFLOW in load_catalog(path).entries


def test_catalog_file_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_bytes(b'[[workflows]]\nname = "caf\xe9"\n')

    with pytest.raises(ConfigurationError, match=r"is not valid UTF-8 at byte 25: save it as UTF-8"):
        load_catalog(path)


def test_sandbox_catalog_lists_every_sandbox_workflow() -> None:
    catalog = parse_catalog(SANDBOX_CATALOG.read_text(encoding="utf-8"), "sandbox catalog")

    assert set(catalog.entries) == set(load_workflows())
    assert catalog.entries[PAYOUT_WORKFLOW].confirm is True


def test_audit_log_on_stdout_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="cannot be stdout, which carries the MCP protocol"):
        load_settings(require_upstream=False, audit_log="stdout", _env_file=None)


def test_catalog_and_allow_any_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unset one of them"):
        load_settings(require_upstream=False, catalog=tmp_path / "c.toml", allow_any_workflow=True, _env_file=None)


async def test_missing_catalog_file_stops_startup(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = make_settings(sandbox.url, allow_any_workflow=False, catalog=tmp_path / "missing.toml")

    with pytest.raises(ConfigurationError, match=r"missing\.toml does not exist: fix AVAYA_WORKFLOWS_CATALOG"):
        build_server(settings)


# --- the allowlist -----------------------------------------------------------------------------------------


async def test_unlisted_workflow_is_refused_before_upstream(catalog_client: Client, policy_sandbox: Sandbox) -> None:
    result = await call(catalog_client, START_TOOL, {"workflow_id": UNLISTED_WORKFLOW})

    assert result.is_error
    assert f"'workflow_id': '{UNLISTED_WORKFLOW}' is not in this server's workflow catalog" in text_of(result)
    assert "infinity://workflows" in text_of(result)
    assert policy_sandbox.state.count("start") == 0


async def test_near_miss_workflow_id_suggests_the_listed_one(catalog_client: Client) -> None:
    result = await call(catalog_client, START_TOOL, {"workflow_id": ORDER_WORKFLOW[:-1] + "d"})

    assert result.is_error
    assert f"Did you mean '{ORDER_WORKFLOW}'?" in text_of(result)


async def test_no_catalog_refuses_every_start(sandbox: Sandbox, era: str) -> None:
    server = build_server(make_settings(sandbox.url, allow_any_workflow=False))
    async with Client(server, mode=era) as client:
        result = await call(client, START_TOOL, {"workflow_id": ORDER_WORKFLOW, "variables": {"order_id": "ORD-1234"}})
        catalog = json.loads((await client.read_resource("infinity://workflows")).contents[0].text)  # type: ignore[union-attr]

    assert result.is_error
    assert "'workflow_id': cannot be started, because this server has no workflow catalog" in text_of(result)
    assert "AVAYA_WORKFLOWS_CATALOG" in text_of(result)
    assert catalog["mode"] == "none"
    assert sandbox.state.count("start") == 0


async def test_allow_any_starts_a_valid_unlisted_id(sandbox: Sandbox, era: str) -> None:
    server = build_server(make_settings(sandbox.url, allow_any_workflow=True))
    async with Client(server, mode=era) as client:
        result = await call(client, START_TOOL, {"workflow_id": UNLISTED_WORKFLOW})

    assert not result.is_error, text_of(result)
    assert sandbox.state.count("start") == 1


async def test_listed_workflow_starts_with_the_catalog_version(catalog_client: Client, policy_sandbox: Sandbox) -> None:
    arguments = {"workflow_id": ORDER_WORKFLOW, "variables": {"order_id": "ORD-1234", "quantity": 2.0}}
    result = await call(catalog_client, START_TOOL, arguments)

    assert not result.is_error, text_of(result)
    starts = [entry for entry in policy_sandbox.state.requests if entry.kind == "start"]
    assert [entry.body for entry in starts] == [
        {"workflowId": ORDER_WORKFLOW, "version": "2", "variables": {"order_id": "ORD-1234", "quantity": 2}}
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({"variables": {}}, "'variables.order_id': is required by workflow", id="missing-required"),
        pytest.param(
            {"variables": {"order_id": "ORD-1234", "coupon": "X"}},
            "'variables.coupon': is not an input of workflow",
            id="undeclared",
        ),
        pytest.param(
            {"variables": {"order_id": 1234}},
            "'variables.order_id': is a number, but workflow wf_025d010627e3314fa905c5484c expects string",
            id="wrong-type",
        ),
        pytest.param(
            {"variables": {"order_id": "ORD-12"}},
            "'variables.order_id': does not have the declared format",
            id="pattern",
        ),
        pytest.param(
            # Arabic-Indic digits match \\d in Python, but not in a catalog pattern.
            {"variables": {"order_id": "ORD-\u0661\u0662\u0663\u0664"}},
            "'variables.order_id': does not have the declared format",
            id="unicode-digits",
        ),
        pytest.param(
            {"variables": {"order_id": "ORD-1234", "priority": "urgent"}},
            "'variables.priority': is not one of the allowed values",
            id="enum",
        ),
        pytest.param(
            {"variables": {"order_id": "ORD-1234", "quantity": 2.5}},
            "'variables.quantity': is a number, but workflow wf_025d010627e3314fa905c5484c expects integer",
            id="fractional-integer",
        ),
        pytest.param(
            {"variables": {"order_id": "ORD-1234", "gift": "yes"}}, "'variables.gift': is a string", id="boolean"
        ),
        pytest.param(
            {"variables": {"order_id": "ORD-1234"}, "version": "7"},
            "'version': '7' is not a version the catalog allows",
            id="version",
        ),
        pytest.param(
            {"variables": {"order_id": "ORD-1234"}, "data": {"a": 1}}, "'data': is not accepted by workflow", id="data"
        ),
    ],
)
async def test_inputs_that_fail_their_declaration_are_refused(
    catalog_client: Client, policy_sandbox: Sandbox, arguments: dict[str, Any], expected: str
) -> None:
    result = await call(catalog_client, START_TOOL, {"workflow_id": ORDER_WORKFLOW, **arguments})

    assert result.is_error
    assert expected in text_of(result)
    assert policy_sandbox.state.count("start") == 0


async def test_backtracking_pattern_times_out_without_stalling(sandbox: Sandbox, era: str) -> None:
    text = f'[[workflows]]\nid = "{ORDER_WORKFLOW}"\nname = "A"\n[workflows.inputs.code]\npattern = "(a|aa)+b"'
    server = build_server(make_settings(sandbox.url, allow_any_workflow=False), catalog=parse_catalog(text, "c.toml"))
    async with Client(server, mode=era) as client:
        with anyio.fail_after(5):
            # Matching this value to the end would take far longer than the test's whole time limit.
            result = await call(
                client, START_TOOL, {"workflow_id": ORDER_WORKFLOW, "variables": {"code": "a" * 80 + "!"}}
            )
            tools = await client.list_tools()

    assert result.is_error
    assert "'variables.code': does not have the declared format" in text_of(result)
    assert len(tools.tools) == 2
    assert sandbox.state.count("start") == 0


async def test_catalog_resource_lists_entries(catalog_client: Client) -> None:
    contents = (await catalog_client.read_resource("infinity://workflows")).contents
    view = json.loads(contents[0].text)  # type: ignore[union-attr]

    assert view["mode"] == "catalog"
    order = next(entry for entry in view["workflows"] if entry["id"] == ORDER_WORKFLOW)
    assert order["default_version"] == "2"
    assert order["versions"] == ["2", "current"]
    assert order["inputs"]["order_id"] == {
        "type": "string",
        "required": True,
        "description": "",
        "pattern": r"ORD-\d{4,10}",
    }


# --- output policy -----------------------------------------------------------------------------------------


async def test_output_policy_reveals_masks_and_drops(catalog_client: Client) -> None:
    started = await call(catalog_client, START_TOOL, {"workflow_id": POLICY_WORKFLOW})
    assert started.structured_content is not None

    final = (await follow(catalog_client, started.structured_content["session_id"]))[-1]

    # A phone number would be masked by default; the catalog reveals this one.
    assert final["output_variables"] == {
        "contactPhone": "+1 908 953 6000",
        "cardOnFile": "[masked, ends 1111]",
        "ticketId": "INC-20417",
    }
    assert final["masked_variables"] == ["cardOnFile"]
    # internalNote is not named, and the entry's default is to drop.
    assert final["dropped_variables"] == ["internalNote"]


# --- read-only mode ----------------------------------------------------------------------------------------


async def test_read_only_mode_hides_the_start_tool(sandbox: Sandbox, era: str) -> None:
    audit = io.StringIO()
    redactor = Redactor()
    server = build_server(make_settings(sandbox.url, read_only=True), audit_log=AuditLog(redactor, audit))
    async with Client(server, mode=era) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        # In mcp 2.3.0 the client of the 2026-07-28 era reports no instructions, so the server's own are read.
        instructions = client.instructions or server.instructions
        result = await call(client, START_TOOL, {"workflow_id": ORDER_WORKFLOW})

    assert tools == [STATUS_TOOL]
    assert result.is_error
    assert "Unknown tool" in text_of(result)
    assert sandbox.state.count("start") == 0
    # The attempt is on record, and the instructions do not invite it.
    records = [json.loads(line) for line in audit.getvalue().splitlines()]
    assert [(record["tool"], record["outcome"]) for record in records] == [(START_TOOL, "unknown_tool")]
    assert instructions is not None
    assert "starts no workflows" in instructions
    assert "Call start_workflow_session" not in instructions


def test_catalog_is_frozen_for_readers() -> None:
    catalog = parse_catalog(CATALOG, "catalog.toml")

    assert isinstance(catalog, Catalog)
    with pytest.raises(TypeError):
        catalog.entries[ORDER_WORKFLOW] = catalog.entries[POLICY_WORKFLOW]  # type: ignore[index]
