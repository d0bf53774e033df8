"""The audit trail: one JSON line per tool call, with no values, to a file, stderr or nowhere."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_avaya_workflows.audit import handle_digest
from mcp_avaya_workflows.errors import ConfigurationError
from mcp_avaya_workflows.principal import local_principal
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import EXAMPLE_WORKFLOW, PLANTED_SECRET, Sandbox, make_settings
from .test_tools import follow

pytestmark = pytest.mark.anyio

PLANTED_CARD = "4111 1111 1111 1111"


def read_audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_every_call_leaves_one_record_without_values(sandbox: Sandbox, tmp_path: Path, era: str) -> None:
    audit_file = tmp_path / "audit.jsonl"
    server = build_server(make_settings(sandbox.url, audit_log=str(audit_file)))
    variables = {"note": f"card {PLANTED_CARD} secret {PLANTED_SECRET}", "amount": "80.00"}
    async with Client(server, mode=era) as client:
        started = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "variables": variables})
        assert started.structured_content is not None
        handle = started.structured_content["session_id"]
        statuses = await follow(client, handle)
        await client.call_tool(START_TOOL, {"workflow_id": "../etc", "variables": variables})
        await client.call_tool(STATUS_TOOL, {"session_id": "wfs_" + "A" * 40})
        await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "variabls": variables})
        await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "variables": {"__proto__": "x"}})

    records = read_audit(audit_file)
    text = audit_file.read_text(encoding="utf-8")

    assert len(records) == 1 + len(statuses) + 4
    assert [record["tool"] for record in records] == [START_TOOL] + [STATUS_TOOL] * len(statuses) + [
        START_TOOL,
        STATUS_TOOL,
        START_TOOL,
        START_TOOL,
    ]
    assert [record["outcome"] for record in records[-4:]] == [
        "invalid_input",
        "not_found",
        "invalid_input",
        "invalid_input",
    ]
    assert records[-4]["field"] == "workflow_id"
    assert records[-4]["workflow_id"] is None
    # A start rejected for another argument still names its valid workflow ID.
    assert records[-1]["field"] == "variables"
    assert records[-1]["workflow_id"] == EXAMPLE_WORKFLOW
    assert all(record["outcome"] == "ok" for record in records[: 1 + len(statuses)])
    assert {record["handle_digest"] for record in records[: 1 + len(statuses)]} == {handle_digest(handle)}
    assert {record["principal"] for record in records} == {local_principal()}
    assert records[0]["workflow_id"] == EXAMPLE_WORKFLOW
    assert records[len(statuses)]["status"] == "COMPLETED"
    assert records[len(statuses)]["redactions"]["masked"] >= 2
    assert all(isinstance(record["latency_ms"], float) for record in records)
    assert all(record["time"].endswith("Z") for record in records)
    # No value, handle or secret: only names of the schema and digests.
    for forbidden in (PLANTED_SECRET, PLANTED_CARD, "80.00", handle, "Jordan Reyes", "4111"):
        assert forbidden not in text
    assert stat.S_IMODE(os.stat(audit_file).st_mode) == 0o600


async def test_audit_defaults_to_stderr(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    server = build_server(make_settings(sandbox.url, audit_log="stderr"))
    async with Client(server) as client:
        await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})

    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [json.loads(line)["tool"] for line in lines] == [START_TOOL]


async def test_audit_off_writes_nothing(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    server = build_server(make_settings(sandbox.url, audit_log="off"))
    async with Client(server) as client:
        await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW})

    assert '"event":"tool_call"' not in capsys.readouterr().err


async def test_unwritable_audit_file_stops_startup(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = make_settings(sandbox.url, audit_log=str(tmp_path / "missing-dir" / "audit.jsonl"))

    with pytest.raises(ConfigurationError, match="cannot be opened for appending"):
        build_server(settings)
