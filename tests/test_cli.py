"""The console script as users run it: stdio server on the sandbox, demo, help and configuration errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_avaya_workflows import __version__
from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import EXAMPLE_WORKFLOW

SANDBOX_SERVER = StdioServerParameters(
    command=sys.executable,
    args=["-m", "mcp_avaya_workflows", "serve", "--sandbox", "--sandbox-time-scale", "0.02"],
    env={"AVAYA_WORKFLOWS_LOG_LEVEL": "INFO"},
)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "mcp_avaya_workflows", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(("era", "negotiated"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_stdio_sandbox_end_to_end(era: str, negotiated: str, tmp_path: Path) -> None:
    """A client spawns `serve --sandbox`, runs Avaya's example to the end, and the sandbox's log confirms the call."""
    server_log = tmp_path / "server.log"
    with server_log.open("w") as errlog:
        async with Client(stdio_client(SANDBOX_SERVER, errlog=errlog), mode=era) as client:
            assert client.protocol_version == negotiated
            tools = {tool.name for tool in (await client.list_tools()).tools}
            resources = {str(resource.uri) for resource in (await client.list_resources()).resources}
            started = await client.call_tool(
                START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "variables": EXAMPLE_VARIABLES}
            )
            assert started.structured_content is not None
            seen = [started.model_dump_json()]
            final: dict[str, Any] = {}
            with anyio.fail_after(20):
                while not final.get("terminal"):
                    handle = started.structured_content["session_id"]
                    result = await client.call_tool(STATUS_TOOL, {"session_id": handle})
                    assert result.structured_content is not None
                    seen.append(result.model_dump_json())
                    final = result.structured_content
                    await anyio.sleep(0.05)
            recorded = await read_sandbox_log(server_log.read_text())

    assert tools == {START_TOOL, STATUS_TOOL}
    assert resources == {
        "infinity://session-context/voice",
        "infinity://session-context/messaging",
        "infinity://workflows",
    }
    assert final["status"] == "COMPLETED"
    assert "4111 1111 1111 1111" not in json.dumps(final)
    assert "cardNumber" in final["masked_variables"]
    # The packaged sandbox catalog drops the SSN and reveals the ticket ID.
    assert final["dropped_variables"] == ["ssn"]
    assert "ssn" not in final["output_variables"]
    assert final["output_variables"]["ticketId"] == "INC-20417"
    audit = [json.loads(line) for line in server_log.read_text().splitlines() if line.startswith('{"time"')]
    assert [record["tool"] for record in audit][:2] == [START_TOOL, STATUS_TOOL]
    assert {record["outcome"] for record in audit} == {"ok"}
    assert len({record["handle_digest"] for record in audit}) == 1
    starts = [entry for entry in recorded if entry["kind"] == "start"]
    assert len(starts) == 1
    assert starts[0]["body"] == {"workflowId": EXAMPLE_WORKFLOW, "version": "current", "variables": EXAMPLE_VARIABLES}
    upstream_ids = {entry["path"].rsplit("/", 1)[-1] for entry in recorded if entry["kind"] == "status"}
    assert len(upstream_ids) == 1
    assert not any(upstream_id in text for upstream_id in upstream_ids for text in seen)


async def read_sandbox_log(server_log: str) -> list[dict[str, Any]]:
    """Read the embedded sandbox's request log, at the loopback URL the server logged when it started."""
    match = re.search(r"sandbox.started url=(http://127\.0\.0\.1:\d+)", server_log)
    assert match, server_log
    async with httpx2.AsyncClient(base_url=match.group(1)) as http:
        response = await http.get("/_sandbox/requests")
    records: list[dict[str, Any]] = response.json()
    return records


def test_demo_prints_masked_completion() -> None:
    result = run_cli("demo", "--time-scale", "0.05")

    assert result.returncode == 0, result.stderr
    assert "start_workflow_session" in result.stdout
    assert "COMPLETED" in result.stdout
    # Even a session that ends before the first read yields one progress line.
    assert re.search(r"progress +\d+\.\d s", result.stdout)
    assert "[masked, ends 1111]" in result.stdout
    assert "123-45-6789" not in result.stdout
    assert "Traceback" not in result.stderr


def test_demo_server_reads_settings_from_the_environment() -> None:
    # The transport setting must not take the demo's own stdio server to HTTP.
    env = {"AVAYA_WORKFLOWS_MAX_OUTPUT_VALUE_CHARS": "64", "AVAYA_WORKFLOWS_TRANSPORT": "http"}
    result = run_cli("demo", "--time-scale", "0", env=env)

    assert result.returncode == 0, result.stderr
    assert '"truncated": true' in result.stdout


def test_demo_into_a_closed_pipe_stops_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_avaya_workflows", "demo", "--time-scale", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()  # like `demo | head -1`
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


def test_missing_configuration_exits_2() -> None:
    result = run_cli("serve")

    assert result.returncode == 2
    assert "AVAYA_WORKFLOWS_INFINITY_URL (or INFINITY_URL) is missing" in result.stderr
    assert "AVAYA_WORKFLOWS_CLIENT_SECRET (or CLIENT_SECRET) is missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_invalid_configuration_hides_secret() -> None:
    result = run_cli(
        "serve",
        env={"INFINITY_URL": "http://core.acme.example", "CLIENT_ID": "c", "CLIENT_SECRET": "hidden-Secret-991"},
    )

    assert result.returncode == 2
    assert "must use https" in result.stderr
    assert "hidden-Secret-991" not in result.stderr + result.stdout


def test_version_and_help() -> None:
    version = run_cli("--version")
    helptext = run_cli("--help")

    assert version.returncode == 0
    assert __version__ in version.stdout
    assert helptext.returncode == 0
    for command in ("serve", "sandbox", "demo"):
        assert command in helptext.stdout


def test_sandbox_refuses_public_host() -> None:
    result = run_cli("sandbox", "--host", "0.0.0.0", "--port", "0")  # noqa: S104 - the bind must be rejected

    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_invalid_handle_key_exits_2() -> None:
    result = run_cli("serve", "--sandbox", env={"AVAYA_WORKFLOWS_HANDLE_KEYS": "not-a-fernet-key-42"})

    assert result.returncode == 2
    assert "AVAYA_WORKFLOWS_HANDLE_KEYS is invalid" in result.stderr
    assert "not-a-fernet-key-42" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["sandbox", "--port", "70000"], "is not a TCP port"),
        (["sandbox", "--port", "http"], "is not a port number"),
        (["sandbox", "--time-scale", "-1"], "must be a finite number of 0 or more"),
        (["serve", "--sandbox", "--sandbox-time-scale", "nan"], "must be a finite number of 0 or more"),
        (["demo", "--time-scale", "fast"], "is not a number"),
    ],
    ids=["port-range", "port-text", "negative-scale", "nan-scale", "text-scale"],
)
def test_bad_option_values_exit_2(arguments: list[str], message: str) -> None:
    result = run_cli(*arguments)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_sandbox_port_in_use_reported() -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        result = run_cli("sandbox", "--port", str(blocker.getsockname()[1]))

    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_reports_server_failure(tmp_path: Path) -> None:
    # The settings are valid, so the demo launches its server, which then fails to load the catalog.
    (tmp_path / ".env").write_text("AVAYA_WORKFLOWS_CATALOG=missing-catalog.toml\n")

    result = subprocess.run(
        [sys.executable, "-m", "mcp_avaya_workflows", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    assert result.returncode == 1
    assert "missing-catalog.toml does not exist" in result.stderr
    assert "The demo stopped" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_demo_invalid_setting_exits_2() -> None:
    result = run_cli("demo", env={"AVAYA_WORKFLOWS_MAX_WAIT_SECONDS": "100"})

    assert result.returncode == 2
    assert "AVAYA_WORKFLOWS_MAX_WAIT_SECONDS is invalid" in result.stderr
    assert "The demo stopped" not in result.stdout
