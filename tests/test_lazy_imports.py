"""The stdio server starts without the modules only other paths need, and builds its HTTP clients on first use.

A stdio client launches the server for each session and waits for it, so the stdio path must not import the
sandbox, the HTTP transport, bearer-token verification, authlib, or the catalog parsers when no catalog is
set. These tests check which modules are loaded, not how long anything takes.

uvicorn and starlette are not in the list: mcp 2.3's `mcp.server.mcpserver` imports both (through
`sse_starlette`), so every server on this SDK loads them.
"""

from __future__ import annotations

import os
import sys
import time

import anyio
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from pydantic import SecretStr

from mcp_avaya_workflows.auth import TokenProvider
from mcp_avaya_workflows.client import InfinityClient
from mcp_avaya_workflows.redaction import Redactor

# Runs the console script's `serve` in this process, and at exit writes the names of the loaded modules to
# the file named by the first argument.
SERVE_AND_LIST_MODULES = """
import atexit, sys
output = sys.argv[1]
def write_modules():
    with open(output, "w", encoding="utf-8") as file:
        file.write("\\n".join(sorted(sys.modules)))
atexit.register(write_modules)
sys.argv = ["mcp-avaya-workflows", "serve"]
from mcp_avaya_workflows.cli import main
main()
"""

NOT_LOADED_BY_STDIO = [
    "mcp_avaya_workflows.sandbox",
    "mcp_avaya_workflows.access_tokens",
    "mcp_avaya_workflows.http_transport",
    "authlib",
    "joserfc",
    "regex",
    "tomllib",
]
TIMEOUT = httpx2.Timeout(5.0)


@pytest.fixture(scope="module")
def stdio_modules(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Run `serve` over stdio with no catalog, list its tools, stop it, and return the modules it loaded."""
    folder = tmp_path_factory.mktemp("lazy")
    output = folder / "modules.txt"
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
    }
    env = {
        **clean,
        # Port 9 on loopback: no server listens there, and startup must not connect.
        "AVAYA_WORKFLOWS_INFINITY_URL": "http://127.0.0.1:9",
        "AVAYA_WORKFLOWS_CLIENT_ID": "lazy-client",
        "AVAYA_WORKFLOWS_CLIENT_SECRET": "lazy-secret-value",
        "AVAYA_WORKFLOWS_HANDLE_KEYS": Fernet.generate_key().decode(),
        "AVAYA_WORKFLOWS_AUDIT_LOG": "off",
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-c", SERVE_AND_LIST_MODULES, str(output)], env=env, cwd=str(folder)
    )

    async def list_tools() -> int:
        with (folder / "server.log").open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                return len((await client.list_tools()).tools)

    assert anyio.run(list_tools) == 2
    # The server writes the list at exit, which may come just after the client has stopped waiting for it.
    deadline = time.monotonic() + 30
    while not output.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert output.exists(), (folder / "server.log").read_text()
    return set(output.read_text(encoding="utf-8").split())


def test_stdio_serve_loads_server(stdio_modules: set[str]) -> None:
    """The module list comes from a server that ran: without this, an empty list would pass every check."""
    assert "mcp_avaya_workflows.server" in stdio_modules
    assert "mcp_avaya_workflows.stdio" in stdio_modules


@pytest.mark.parametrize("module", NOT_LOADED_BY_STDIO)
def test_stdio_serve_skips_module(stdio_modules: set[str], module: str) -> None:
    assert module not in stdio_modules


def make_provider() -> TokenProvider:
    return TokenProvider(
        token_url="http://127.0.0.1:9/token",
        client_id="lazy-client",
        client_secret=SecretStr("lazy-secret-value"),
        scope=None,
        leeway_seconds=60,
        timeout=TIMEOUT,
        redactor=Redactor(),
    )


@pytest.mark.anyio
async def test_token_provider_closes_unused() -> None:
    """A provider that never fetched a token closes without creating an OAuth client, and then rejects requests."""
    provider = make_provider()
    await provider.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await provider.get_token()


@pytest.mark.anyio
async def test_client_creates_http_on_first_use() -> None:
    client = InfinityClient(base_url="http://127.0.0.1:9", tokens=make_provider(), redactor=Redactor(), timeout=TIMEOUT)
    assert client._http_client is None
    first = client._http
    assert client._http is first
    assert str(first.base_url) == "http://127.0.0.1:9"
    await client.aclose()
    assert first.is_closed


@pytest.mark.anyio
async def test_client_closed_before_use_rejects() -> None:
    client = InfinityClient(base_url="http://127.0.0.1:9", tokens=make_provider(), redactor=Redactor(), timeout=TIMEOUT)
    await client.aclose()
    assert client._http_client is None
    with pytest.raises(RuntimeError, match="closed"):
        _ = client._http
