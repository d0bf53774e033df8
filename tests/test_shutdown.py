"""The stdio server as a client launches it: progress notifications on the wire, and how it stops.

Each test starts `mcp-avaya-workflows serve --sandbox` in a subprocess (as `python -m mcp_avaya_workflows`,
the entry point test_cli.py also uses) and speaks raw JSON-RPC lines to it. Every read has a deadline, so
a server that hangs fails the test instead of stalling the run, and the process is killed afterwards.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import EXAMPLE_WORKFLOW

NEVER_FINISHES = "025d0114c92e16d3af8b5e72a1"
# The newest protocol version of the initialize handshake in mcp 2.3.
PROTOCOL_VERSION = "2025-11-25"
# Seconds allowed for the server's startup, which imports the SDK and starts the embedded sandbox.
STARTUP_SECONDS = 30.0
READ_SECONDS = 10.0
STOP_SECONDS = 5.0


class StdioServer:
    """A server subprocess with a reader thread that queues each stdout line, so reads can have deadlines."""

    def __init__(self, tmp_path: Path) -> None:
        self.audit_path = tmp_path / "audit.jsonl"
        self.stderr_path = tmp_path / "stderr.log"
        clean = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
        }
        env = {
            **clean,
            "AVAYA_WORKFLOWS_ALLOW_ANY_WORKFLOW": "true",
            "AVAYA_WORKFLOWS_AUDIT_LOG": str(self.audit_path),
            "AVAYA_WORKFLOWS_LOG_LEVEL": "INFO",
        }
        self._stderr: IO[bytes] = self.stderr_path.open("wb")
        # The working directory is empty, so no .env file there changes the settings.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_avaya_workflows", "serve", "--sandbox", "--sandbox-time-scale", "0.5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=tmp_path,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, name="stdout-reader", daemon=True)
        self._reader.start()
        self.notifications: list[dict[str, Any]] = []

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def receive(self, seconds: float = READ_SECONDS) -> dict[str, Any]:
        """Return the next message on stdout, failing the test at EOF or after `seconds`."""
        try:
            line = self._lines.get(timeout=seconds)
        except queue.Empty:
            pytest.fail(f"the server sent nothing for {seconds} s; stderr:\n{self.stderr()}")
        if line is None:
            pytest.fail(f"the server closed stdout; stderr:\n{self.stderr()}")
        message: dict[str, Any] = json.loads(line)
        return message

    def receive_response(self, request_id: int, seconds: float = READ_SECONDS) -> dict[str, Any]:
        """Return the response to `request_id`, keeping the notifications that arrive before it."""
        deadline = time.monotonic() + seconds
        while True:
            message = self.receive(max(0.0, deadline - time.monotonic()))
            if message.get("id") == request_id:
                return message
            self.notifications.append(message)

    def receive_progress(self, token: str, seconds: float = READ_SECONDS) -> dict[str, Any]:
        """Return the params of the next progress notification for `token`."""
        deadline = time.monotonic() + seconds
        while True:
            message = self.receive(max(0.0, deadline - time.monotonic()))
            self.notifications.append(message)
            params = message.get("params") or {}
            if message.get("method") == "notifications/progress" and params.get("progressToken") == token:
                return dict(params)

    def call(self, request_id: int, name: str, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments, **params},
            }
        )
        return self.receive_response(request_id)

    def initialize(self) -> dict[str, Any]:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "test-shutdown", "version": "1"},
                },
            }
        )
        response = self.receive_response(1, STARTUP_SECONDS)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    def start_session(self, request_id: int, workflow_id: str) -> str:
        response = self.call(request_id, START_TOOL, {"workflow_id": workflow_id})
        content = response["result"]["structuredContent"]
        return str(content["session_id"])

    def begin_wait(self, request_id: int, session_id: str, wait_seconds: float, token: str) -> None:
        """Send a status call with a wait, without reading its response."""
        self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {
                    "name": STATUS_TOOL,
                    "arguments": {"session_id": session_id, "wait_seconds": wait_seconds},
                    "_meta": {"progressToken": token},
                },
            }
        )

    def wait_exit(self, seconds: float = STOP_SECONDS) -> tuple[int | None, float]:
        """Return the exit status (None if still running after `seconds`) and the seconds waited."""
        began = time.monotonic()
        try:
            status: int | None = self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            status = None
        return status, time.monotonic() - began

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text(encoding="utf-8").splitlines()]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_SECONDS)
        # The reader thread ends at the EOF of the exited process; closing stdout under it would raise there.
        self._reader.join(STOP_SECONDS)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StdioServer]:
    running = StdioServer(tmp_path)
    try:
        yield running
    finally:
        running.close()


def in_flight_wait(server: StdioServer) -> None:
    """Start the never-finishing workflow and a 20 s wait on it, and return once its first progress arrived."""
    server.initialize()
    session_id = server.start_session(2, NEVER_FINISHES)
    server.begin_wait(3, session_id, 20, "wait-20")
    server.receive_progress("wait-20")


def test_progress_notifications_on_stdio(server: StdioServer) -> None:
    initialized = server.initialize()
    session_id = server.start_session(2, EXAMPLE_WORKFLOW)

    response = server.call(
        3, STATUS_TOOL, {"session_id": session_id, "wait_seconds": 5}, _meta={"progressToken": "wait-5"}
    )

    assert initialized["result"]["protocolVersion"] == PROTOCOL_VERSION
    status = response["result"]["structuredContent"]
    assert response["result"].get("isError") is not True
    assert status["status"] == "COMPLETED"
    assert status["terminal"] is True
    progress = [
        message["params"] for message in server.notifications if message.get("method") == "notifications/progress"
    ]
    assert len(progress) >= 2
    assert {params["progressToken"] for params in progress} == {"wait-5"}
    assert {params["total"] for params in progress} == {5}
    values = [params["progress"] for params in progress]
    assert values == sorted(set(values))
    assert progress[0]["message"].startswith("RUNNING in module mod_lookupCustomer_001, ")
    assert progress[-1]["message"].startswith("COMPLETED, ")
    assert all(params["message"].endswith(" of 5 s waited") for params in progress)


def test_sigterm_cancels_wait_audited(server: StdioServer) -> None:
    in_flight_wait(server)

    server.process.send_signal(signal.SIGTERM)
    status, waited = server.wait_exit()

    assert status is not None, f"still running {STOP_SECONDS} s after SIGTERM"
    assert waited < STOP_SECONDS
    records = [record for record in server.audit() if record["tool"] == STATUS_TOOL]
    assert [record["outcome"] for record in records] == ["cancelled"]
    stderr = server.stderr()
    assert "server.signal_received signal=SIGTERM" in stderr
    assert "Traceback" not in stderr


def test_sigterm_during_wait_exits_zero(server: StdioServer) -> None:
    in_flight_wait(server)

    server.process.send_signal(signal.SIGTERM)
    status, _ = server.wait_exit()

    stderr = server.stderr()
    assert "Fatal Python error" not in stderr
    assert status == 0


def test_stdin_eof_ends_wait(server: StdioServer) -> None:
    in_flight_wait(server)

    assert server.process.stdin is not None
    server.process.stdin.close()
    status, waited = server.wait_exit()

    assert status == 0
    assert waited < STOP_SECONDS
    records = [record for record in server.audit() if record["tool"] == STATUS_TOOL]
    assert [record["outcome"] for record in records] == ["cancelled"]
    stderr = server.stderr()
    assert "Traceback" not in stderr
    assert "Fatal Python error" not in stderr


def test_stdin_eof_idle_exits_zero(server: StdioServer) -> None:
    server.initialize()

    assert server.process.stdin is not None
    server.process.stdin.close()
    status, _ = server.wait_exit()

    assert status == 0
    assert "Traceback" not in server.stderr()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_idle_reaches_handler(server: StdioServer, stop_signal: signal.Signals) -> None:
    server.initialize()

    server.process.send_signal(stop_signal)
    status, waited = server.wait_exit()

    assert status is not None, f"still running {STOP_SECONDS} s after {stop_signal.name}"
    assert waited < STOP_SECONDS
    stderr = server.stderr()
    # lifecycle.py handles both signals itself, so SIGINT never becomes a KeyboardInterrupt.
    assert f"server.signal_received signal={stop_signal.name}" in stderr
    assert "KeyboardInterrupt" not in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_idle_exits_zero(server: StdioServer, stop_signal: signal.Signals) -> None:
    server.initialize()

    server.process.send_signal(stop_signal)
    status, _ = server.wait_exit()

    assert "Fatal Python error" not in server.stderr()
    assert status == 0
