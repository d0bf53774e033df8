"""Start the processes the benchmarks measure: the sandbox, our server and the echo server.

Every server binds 127.0.0.1, writes its stderr to a file in a scratch folder, and is stopped with
SIGTERM at the end. Our server gets its default settings, except those `server_env` sets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
from cryptography.fernet import Fernet
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES, EXAMPLE_WORKFLOW_ID
from mcp_avaya_workflows.logs import RedactingFormatter
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG
from mcp_avaya_workflows.settings import Settings
from mcp_avaya_workflows.tools import START_TOOL

from .baselines import HOST

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60.0
LISTENING = re.compile(r"listening on (http://\S+)")
# uvicorn logs this line at INFO once per worker, when the worker's app has started.
APP_STARTED = "Application startup complete."
SANDBOX_CLIENT_ID = "bench-client"
# A credential for the loopback sandbox only.
SANDBOX_CLIENT_SECRET = "bench-sandbox-secret-4f0c"  # noqa: S105
# Our server keeps its client-side rate limit on, so every call passes through it, with a quota far above
# any load these benchmarks generate.
RATE_LIMIT_PER_MINUTE = "1000000"
RATE_LIMIT_BURST = "1000"


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Log at INFO to a file through the redacting formatter, as our server processes log to stderr.

    A server built in this process logs here. With a handler on the root logger, the SDK's `MCPServer` also
    skips installing its own console handler.
    """
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(Redactor()))
    root = logging.getLogger()
    previous = root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx2", "httpcore2")}
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        handler.close()


def clean_env() -> dict[str, str]:
    """Return this process's environment without any server setting, so only what a benchmark sets applies."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
    }


class LoggedProcess:
    """A subprocess whose stderr goes to a file, because a pipe that no process reads would block it once full."""

    def __init__(self, command: list[str], folder: Path, name: str, env: Mapping[str, str]) -> None:
        self.log_path = folder / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log, env=dict(env), cwd=folder
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: re.Pattern[str], count: int = 1) -> re.Match[str]:
        """Wait until `pattern` has matched `count` times in the log, and return the first match."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            matches = list(pattern.finditer(self.log()))
            if len(matches) >= count:
                return matches[0]
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} exited with status {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.process.args} did not log {pattern.pattern!r} {count} times:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class SandboxProcess(LoggedProcess):
    """`mcp-avaya-workflows sandbox` on a free loopback port, with sessions that complete at once."""

    def __init__(self, folder: Path, time_scale: float = 0) -> None:
        command = [sys.executable, "-m", "mcp_avaya_workflows", "sandbox", "--port", "0"]
        command += ["--time-scale", str(time_scale), "--client-id", SANDBOX_CLIENT_ID]
        command += ["--client-secret", SANDBOX_CLIENT_SECRET]
        super().__init__(command, folder, "sandbox", clean_env())
        self.url = self.wait_for(LISTENING).group(1)
        self._http = httpx2.Client(base_url=self.url, timeout=30)

    def requests(self) -> list[dict[str, Any]]:
        """Return the sandbox's request log, which keeps only the last 10,000 requests."""
        response = self._http.get("/_sandbox/requests")
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries

    def count(self, kind: str) -> int:
        return sum(1 for entry in self.requests() if entry["kind"] == kind)

    def clear_requests(self) -> None:
        self._http.delete("/_sandbox/requests").raise_for_status()

    def stop(self) -> None:
        self._http.close()
        super().stop()


def server_env(sandbox: SandboxProcess, folder: Path, handle_key: str) -> dict[str, str]:
    """Return the settings that point our server at `sandbox`, with the audit trail in a file."""
    return {
        **clean_env(),
        "AVAYA_WORKFLOWS_INFINITY_URL": sandbox.url,
        "AVAYA_WORKFLOWS_CLIENT_ID": SANDBOX_CLIENT_ID,
        "AVAYA_WORKFLOWS_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "AVAYA_WORKFLOWS_CATALOG": str(SANDBOX_CATALOG),
        "AVAYA_WORKFLOWS_HANDLE_KEYS": handle_key,
        "AVAYA_WORKFLOWS_AUDIT_LOG": str(folder / "audit.jsonl"),
        "AVAYA_WORKFLOWS_LOG_LEVEL": "INFO",
        "AVAYA_WORKFLOWS_RATE_LIMIT_PER_MINUTE": RATE_LIMIT_PER_MINUTE,
        "AVAYA_WORKFLOWS_RATE_LIMIT_BURST": RATE_LIMIT_BURST,
    }


def in_memory_settings(env: Mapping[str, str]) -> Settings:
    """Build the settings that the `AVAYA_WORKFLOWS_` variables of `env` set, for a server in this process."""
    prefix = "AVAYA_WORKFLOWS_"
    values = {key.removeprefix(prefix).lower(): value for key, value in env.items() if key.startswith(prefix)}
    return Settings(**values, _env_file=None)  # type: ignore[call-arg]


def echo_env() -> dict[str, str]:
    return {**clean_env(), "PYTHONPATH": str(PROJECT_ROOT)}


def our_stdio(env: Mapping[str, str], folder: Path) -> StdioServerParameters:
    command = ["-m", "mcp_avaya_workflows", "serve"]
    return StdioServerParameters(command=sys.executable, args=command, env=dict(env), cwd=str(folder))


def echo_stdio(folder: Path) -> StdioServerParameters:
    command = ["-m", "bench.baselines", "echo", "--transport", "stdio"]
    return StdioServerParameters(command=sys.executable, args=command, env=echo_env(), cwd=str(folder))


@contextlib.asynccontextmanager
async def stdio_client_logged(parameters: StdioServerParameters, log_path: Path) -> AsyncIterator[Client]:
    """Connect an MCP client to a stdio server that writes its stderr to `log_path`."""
    with log_path.open("w") as errlog:
        async with Client(stdio_client(parameters, errlog=errlog)) as client:
            yield client


class HttpServerProcess(LoggedProcess):
    """Ours (`serve --transport http`) or the echo server over HTTP, on a free loopback port."""

    def __init__(self, kind: str, folder: Path, *, workers: int = 1, env: Mapping[str, str] | None = None) -> None:
        if kind == "ours":
            command = [sys.executable, "-m", "mcp_avaya_workflows", "serve", "--transport", "http"]
            process_env = dict(env or {})
        else:
            command = [sys.executable, "-m", "bench.baselines", "echo", "--transport", "http"]
            process_env = echo_env()
        command += ["--host", HOST, "--port", "0", "--workers", str(workers)]
        super().__init__(command, folder, f"{kind}-http-{workers}w-{time.monotonic_ns()}", process_env)
        try:
            self.url = self.wait_for(LISTENING).group(1)
            self.wait_for(re.compile(re.escape(APP_STARTED)), count=workers)
        except BaseException:
            self.stop()
            raise


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """Create a temporary folder for the servers' logs and audit trails, and remove it afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        yield Path(folder)


def new_handle_key() -> str:
    return Fernet.generate_key().decode()


async def start_example(client: Client) -> str:
    """Start Avaya's example workflow through `client` and return the session handle."""
    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW_ID, "variables": EXAMPLE_VARIABLES})
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"start_workflow_session failed: {result.content}")
    return str(result.structured_content["session_id"])


def check_result(result: Any, tool: str) -> None:
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {json.dumps(result.model_dump(mode='json'))[:500]}")
