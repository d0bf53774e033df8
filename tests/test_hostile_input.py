"""Hostile input at every boundary: tool arguments, Infinity's responses, the sandbox's request bodies and stdio.

Each input is rejected with an error that names the field, or neutralized. Tool-level cases check the
sandbox's request log to prove that nothing reached upstream.
"""

from __future__ import annotations

import base64
import json
import os
import types
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

import mcp_avaya_workflows.sanitizer as sanitizer_module
import mcp_avaya_workflows.strict_json as strict_json_module
from mcp_avaya_workflows.client import MAX_RESPONSE_BYTES, InfinityClient
from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES
from mcp_avaya_workflows.errors import InvalidResponseError, RequestRejectedError, StartOutcomeUnknownError
from mcp_avaya_workflows.sandbox import Fault
from mcp_avaya_workflows.sanitizer import HANDLE_FIX, ID_FIX, VERSION_FIX, StartRequest
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .conftest import CLIENT_ID, EXAMPLE_WORKFLOW, PLANTED_SECRET, Sandbox
from .test_cli import SANDBOX_SERVER, read_sandbox_log
from .test_upstream import make_client, make_tokens, start_example

pytestmark = pytest.mark.anyio

SESSIONS_PATH = "/api/workflow/v1/workflows/sessions"
TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"
# A syntactically valid handle prefix, so that only the appended characters are wrong.
HANDLE_PREFIX = "wfs_" + "A" * 20


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def assert_rejected(result: CallToolResult, field: str) -> str:
    """Check that a tool call failed on `field` without a traceback, and return the error text."""
    message = text_of(result)
    assert result.is_error, message
    assert f"Invalid argument '{field}'" in message
    assert "Traceback" not in message
    return message


def assert_nothing_sent(sandbox: Sandbox) -> None:
    """Check that the sandbox saw no request at all: no token, no start and no status."""
    assert sandbox.state.count() == 0, [(entry.kind, entry.path) for entry in sandbox.state.requests]


def id_arguments(field: str, value: str) -> tuple[str, dict[str, Any]]:
    """Build the tool call that puts `value` into `field`: workflow_id, version or session_id."""
    if field == "workflow_id":
        return START_TOOL, {"workflow_id": value}
    if field == "version":
        return START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "version": value}
    return STATUS_TOOL, {"session_id": HANDLE_PREFIX + value}


ID_FIXES = {"workflow_id": ID_FIX, "version": VERSION_FIX, "session_id": HANDLE_FIX}


class CountingUnicodedata:
    """A stand-in for the sanitizer's `unicodedata` module that counts calls by function name.

    Normalizing or classifying characters costs time in proportion to the input, so a count near
    zero proves that an oversized value was rejected before that work.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        function = getattr(unicodedata, name)

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return function(*args)

        return counted


@pytest.fixture
def unicodedata_calls(monkeypatch: pytest.MonkeyPatch) -> CountingUnicodedata:
    counter = CountingUnicodedata()
    monkeypatch.setattr(sanitizer_module, "unicodedata", counter)
    return counter


# Traversal and encoding in IDs and handles

ENCODED_TRAVERSAL = [
    pytest.param("025d%2e%2e%2fadmin", "'%'", id="single-encoded"),
    pytest.param("%252e%252e%252fadmin", "'%'", id="double-encoded"),
    pytest.param("..%c0%af", "'..'", id="overlong-utf8"),
    pytest.param("025d%2Fadmin", "'%'", id="encoded-slash"),
    pytest.param("025d\\admin", "'\\\\'", id="backslash"),
    pytest.param("025d/../admin", "'..'", id="dot-dot-slash"),
    # `re.match` with a `$` anchor accepts a trailing newline.
    pytest.param("025d0111114ed33c55731a7cb0\n", "U+000A (LINE FEED)", id="trailing-newline"),
]


@pytest.mark.parametrize(("value", "problem"), ENCODED_TRAVERSAL)
async def test_encoded_traversal_rejected(client: Client, sandbox: Sandbox, value: str, problem: str) -> None:
    for field in ("workflow_id", "version", "session_id"):
        tool, arguments = id_arguments(field, value)

        message = assert_rejected(await client.call_tool(tool, arguments), field)

        assert problem in message
        assert message.endswith(ID_FIXES[field])
    assert_nothing_sent(sandbox)


# Injection through IDs and handles, and neutralized free text

INJECTED_CHARACTERS = [
    pytest.param("025d\r\nX-Injected: 1", "\r", id="crlf-header-injection"),
    # `\d` matches these digits, so a pattern written with `\d` would accept them.
    pytest.param("025d\u0660\u0661\u0662", "\u0660", id="arabic-indic-digits"),
    pytest.param("025d\uff10", "\uff10", id="fullwidth-digit"),
    pytest.param("025d\u202e0111", "\u202e", id="right-to-left-override"),
    pytest.param("025d\u2066x\u2069", "\u2066", id="left-to-right-isolate"),
    pytest.param("025d\U000e0001\U000e0041", "\U000e0001", id="language-tag"),
    pytest.param("025d\U000e0041", "\U000e0041", id="tag-letter"),
    pytest.param("025d\u200b0111", "\u200b", id="zero-width-space"),
    pytest.param("025d\u200d0111", "\u200d", id="zero-width-joiner"),
    pytest.param("025d\ufeff", "\ufeff", id="byte-order-mark"),
    pytest.param("025d\u0430bc", "\u0430", id="cyrillic-a"),
    pytest.param("wf_025d\u043e111", "\u043e", id="cyrillic-o"),
]


@pytest.mark.parametrize(("value", "bad_char"), INJECTED_CHARACTERS)
async def test_injected_characters_rejected(client: Client, sandbox: Sandbox, value: str, bad_char: str) -> None:
    code_point = f"U+{ord(bad_char):04X}"
    for field in ("workflow_id", "version", "session_id"):
        tool, arguments = id_arguments(field, value)

        message = assert_rejected(await client.call_tool(tool, arguments), field)

        assert code_point in message
        assert bad_char not in message
        assert message.endswith(ID_FIXES[field])
    assert_nothing_sent(sandbox)


async def test_hidden_text_stripped_before_upstream(client: Client, sandbox: Sandbox) -> None:
    variables = {
        "note": "Refund\u200b \u202eorder\u2069 \U000e0001\U000e0049\U000e0047now",
        "agent": "\u2066Jane\u2069\u200d",
        "ref": "A\ud800B",
    }
    data = {"customer": {"notes": ["a\u200cb", "c\u202dd\ufeff"]}}

    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "variables": variables, "data": data})

    assert not result.is_error, text_of(result)
    starts = [entry for entry in sandbox.state.requests if entry.kind == "start"]
    assert len(starts) == 1
    assert starts[0].body["variables"] == {"note": "Refund order now", "agent": "Jane", "ref": "AB"}
    assert starts[0].body["data"] == {"customer": {"notes": ["ab", "cd"]}}


# Oversized and malformed tool arguments


def nested_objects(levels: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        tree = {"a": tree}
    return tree


def nested_lists(levels: int) -> list[Any]:
    tree: list[Any] = [1]
    for _ in range(levels - 1):
        tree = [tree]
    return tree


async def test_depth_bomb_in_data_rejected(client: Client, sandbox: Sandbox) -> None:
    # The SDK client cannot serialize 400 levels, so the stdio tests below send the 100000-level bomb.
    objects = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "data": nested_objects(200)})
    lists = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "data": {"rows": nested_lists(200)}})

    assert "is nested deeper than 8 levels" in assert_rejected(objects, "data" + ".a" * 8)
    assert "is nested deeper than 8 levels" in assert_rejected(lists, "data.rows" + "[0]" * 7)
    assert_nothing_sent(sandbox)


@pytest.mark.parametrize("field", ["workflow_id", "version", "session_id"])
async def test_oversized_id_rejected_by_length(
    client: Client, sandbox: Sandbox, unicodedata_calls: CountingUnicodedata, field: str
) -> None:
    tool, arguments = id_arguments(field, "a" * 1_000_000)

    message = assert_rejected(await client.call_tool(tool, arguments), field)

    assert "characters long; the limit is" in message
    # A scan character by character would classify about a million characters.
    assert sum(unicodedata_calls.calls.values()) < 100
    assert_nothing_sent(sandbox)


async def test_oversized_text_rejected_before_normalizing(
    client: Client, sandbox: Sandbox, unicodedata_calls: CountingUnicodedata
) -> None:
    arguments = {"workflow_id": EXAMPLE_WORKFLOW, "variables": {"note": "e\u0301" * 500_000}}

    message = assert_rejected(await client.call_tool(START_TOOL, arguments), "variables.note")

    assert "is 1000000 characters long; the limit is 4096" in message
    assert unicodedata_calls.calls["normalize"] == 0
    assert unicodedata_calls.calls["category"] < 100
    assert_nothing_sent(sandbox)


@pytest.mark.parametrize(
    ("arguments", "field", "problem"),
    [
        pytest.param(
            {"data": {f"part{index}": "x" * 4000 for index in range(9)}},
            "data",
            "bytes of JSON; the limit is 32768",
            id="data-bytes",
        ),
        pytest.param({"data": {"rows": [0] * 200_000}}, "data", "has more than 1000 values", id="data-items"),
        pytest.param(
            {"variables": {f"v{index}": index for index in range(101)}},
            "variables",
            "has 101 entries; the limit is 100",
            id="variable-count",
        ),
    ],
)
async def test_oversized_payload_rejected(
    client: Client, sandbox: Sandbox, arguments: dict[str, Any], field: str, problem: str
) -> None:
    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, **arguments})

    assert problem in assert_rejected(result, field)
    assert_nothing_sent(sandbox)


@pytest.mark.parametrize(
    ("arguments", "field", "digits"),
    [
        pytest.param({"variables": {"amount": 10**5000}}, "variables.amount", "about 5001 digits", id="variable"),
        pytest.param(
            {"data": {"order": {"lines": [{"total": -(10**9000)}]}}},
            "data.order.lines[0].total",
            "about 9001 digits",
            id="nested-data",
        ),
        pytest.param({"variables": {"amount": 10**100}}, "variables.amount", "of 101 digits", id="hundred-digits"),
    ],
)
async def test_long_integer_rejected_by_field(
    client: Client, sandbox: Sandbox, arguments: dict[str, Any], field: str, digits: str
) -> None:
    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, **arguments})

    message = assert_rejected(result, field)
    assert digits in message
    assert "Send large identifiers or amounts as strings" in message
    assert_nothing_sent(sandbox)


# Keys that can rewrite a JavaScript prototype


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"variables": {"amount": "1", "__proto__": "x"}}, "variables.__proto__", id="variable-proto"),
        pytest.param({"variables": {"constructor": 1}}, "variables.constructor", id="variable-constructor"),
        pytest.param({"variables": {"prototype": True}}, "variables.prototype", id="variable-prototype"),
        pytest.param({"data": {"__proto__": {"isAdmin": True}}}, "data.__proto__", id="data-top-level"),
        pytest.param({"data": {"order": {"constructor": {"a": 1}}}}, "data.order.constructor", id="data-nested"),
        pytest.param(
            {"data": {"lines": [{"sku": "A-1"}, {"prototype": 1}]}}, "data.lines[1].prototype", id="data-in-list"
        ),
        pytest.param(
            {"data": {"a": {"b": [[{"c": {"__proto__": None}}]]}}}, "data.a.b[0][0].c.__proto__", id="data-deep"
        ),
    ],
)
async def test_prototype_keys_rejected(client: Client, sandbox: Sandbox, arguments: dict[str, Any], field: str) -> None:
    result = await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, **arguments})

    message = assert_rejected(result, field)
    assert "reserved JavaScript property name" in message
    assert message.endswith("Rename the key")
    assert_nothing_sent(sandbox)


# Infinity's responses, parsed by the real HTTP client from raw bytes


@pytest.fixture
async def infinity(sandbox: Sandbox) -> AsyncIterator[InfinityClient]:
    client = make_client(sandbox.url)
    yield client
    await client.aclose()


def status_body(output_variables: str) -> str:
    return '{"isRunning": false, "status": "COMPLETED", "outputVariables": ' + output_variables + "}"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            '{"isRunning": false, "isRunning": true, "status": "COMPLETED"}', "repeats a key", id="duplicate-top"
        ),
        pytest.param(status_body('{"a": {"x": 1, "x": 2}}'), "repeats a key", id="duplicate-nested"),
        pytest.param(status_body('{"x": NaN}'), "NaN is not valid JSON", id="nan"),
        pytest.param(status_body('{"x": Infinity}'), "Infinity is not valid JSON", id="infinity"),
        pytest.param(status_body('{"x": [-Infinity]}'), "-Infinity is not valid JSON", id="negative-infinity"),
        pytest.param(status_body('{"x": 1e400}'), "too large for a 64-bit float", id="overflowing-float"),
        pytest.param(status_body('{"x": ' + "9" * 5000 + "}"), "more than 64 digits", id="5000-digits"),
        pytest.param(status_body('{"x": -' + "9" * 65 + "}"), "more than 64 digits", id="65-digits"),
        pytest.param(status_body("[" * 500_000 + "]" * 500_000), "nested too deeply", id="depth-bomb"),
        pytest.param("[" * (MAX_RESPONSE_BYTES - 1), "nested too deeply", id="unclosed-depth-bomb"),
    ],
)
async def test_hostile_status_response_rejected(
    sandbox: Sandbox, infinity: InfinityClient, body: str, reason: str
) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body=body))

    with pytest.raises(InvalidResponseError) as info:
        await infinity.get_status(session_id)

    assert reason in str(info.value)
    assert info.value.endpoint == "status"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(status_body('{"x": ' + "9" * 64 + "}"), id="64-digits"),
        pytest.param(status_body('{"note": "' + "[{" * 100 + '\\"]"}'), id="brackets-in-string"),
        pytest.param(status_body('{"x": 1.7976931348623157e308}'), id="largest-float"),
    ],
)
async def test_status_response_near_limits_accepted(sandbox: Sandbox, infinity: InfinityClient, body: str) -> None:
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body=body))

    status = await infinity.get_status(session_id)

    assert status.status == "COMPLETED"
    assert status.output_variables


async def test_depth_bomb_rejected_before_json_loads(
    sandbox: Sandbox, infinity: InfinityClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []

    def recording_loads(text: str, **options: Any) -> Any:
        decoded.append(text[:20])
        return json.loads(text, **options)

    monkeypatch.setattr(strict_json_module, "json", types.SimpleNamespace(loads=recording_loads))
    session_id = await start_example(infinity)
    sandbox.state.add_fault(Fault(target="status", status=200, body=status_body("[" * 900_000 + "1")))

    with pytest.raises(InvalidResponseError):
        await infinity.get_status(session_id)

    # The start response went through json.loads, which shows that the recorder is wired in.
    assert len(decoded) == 1
    assert decoded[0].startswith('{"session"')


async def test_duplicate_key_message_hides_content(sandbox: Sandbox, infinity: InfinityClient) -> None:
    session_id = await start_example(infinity)
    body = status_body(f'{{"{PLANTED_SECRET}": 1, "{PLANTED_SECRET}": 2}}')
    sandbox.state.add_fault(Fault(target="status", status=200, body=body))

    with pytest.raises(InvalidResponseError) as info:
        await infinity.get_status(session_id)

    assert "repeats a key" in str(info.value)
    assert PLANTED_SECRET not in str(info.value)


async def test_duplicate_session_id_in_start_rejected(sandbox: Sandbox, infinity: InfinityClient) -> None:
    body = '{"session": {"id": "028d0000000000000000000001", "id": "028d0000000000000000000002"}}'
    sandbox.state.add_fault(Fault(target="start", status=201, body=body))

    with pytest.raises(StartOutcomeUnknownError) as info:
        await infinity.start_session(StartRequest(EXAMPLE_WORKFLOW, "current", {}))

    assert "repeats a key" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"error": "Bad Request", "error": "invalid_client", "message": "x"}', id="duplicate-error"),
        pytest.param('{"error": "Bad Request", "message": NaN}', id="nan"),
        pytest.param('{"error": "Bad Request", "code": ' + "9" * 5000 + "}", id="5000-digits"),
        pytest.param('{"error": "Bad Request", "message": ' + "[" * 500_000 + "]" * 500_000 + "}", id="depth-bomb"),
    ],
)
async def test_hostile_error_body_ignored(sandbox: Sandbox, infinity: InfinityClient, body: str) -> None:
    sandbox.state.add_fault(Fault(target="start", status=400, body=body))

    with pytest.raises(RequestRejectedError) as info:
        await start_example(infinity)

    assert info.value.status == 400
    assert info.value.upstream_error is None


def compact_jws(payload: bytes) -> str:
    """Build a compact JWS around `payload` with a dummy signature, which the client never verifies."""

    def encode(part: bytes) -> str:
        return base64.urlsafe_b64encode(part).rstrip(b"=").decode()

    return ".".join([encode(b'{"alg":"RS256","typ":"JWT"}'), encode(payload), encode(b"signature")])


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"exp": NaN}', id="nan"),
        pytest.param(b'{"exp": Infinity}', id="infinity"),
        pytest.param(b'{"exp": 1e400}', id="overflowing-float"),
        pytest.param(b'{"exp": 1' + b"0" * 400 + b"}", id="overflowing-integer"),
        pytest.param(b'{"exp": ' + b"9" * 5000 + b"}", id="5000-digits"),
        pytest.param(b'{"exp": 1, "exp": 99999999999}', id="duplicate-exp"),
        pytest.param(b"[" * 40_000, id="depth-bomb"),
    ],
)
async def test_hostile_token_claims_ignored(sandbox: Sandbox, payload: bytes) -> None:
    # expires_in of 30 s is inside the 60 s refresh leeway, so a token whose claims are ignored is
    # refreshed on every call. An accepted NaN, infinite or far-future exp would never be refreshed.
    token = {"access_token": compact_jws(payload), "token_type": "Bearer", "expires_in": 30}
    sandbox.state.add_fault(Fault(target="token", status=200, body=token, times=2))
    tokens = make_tokens(sandbox.url, leeway=60)
    try:
        first = await tokens.get_token()
        second = await tokens.get_token()
    finally:
        await tokens.aclose()

    assert first == second == token["access_token"]
    assert sandbox.state.count("token") == 2


# The sandbox's parsing of request bodies


@pytest.fixture
async def sandbox_http(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    """A plain HTTP client for the sandbox that sends a valid bearer token with every request."""
    tokens = make_tokens(sandbox.url)
    try:
        token = await tokens.get_token()
    finally:
        await tokens.aclose()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(base_url=sandbox.url, headers=headers) as http:
        yield http


def start_body(tail: str) -> bytes:
    return ('{"workflowId": "' + EXAMPLE_WORKFLOW + '", ' + tail + "}").encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            start_body('"workflowId": "025d0000000000000000000000"'),
            "the request body repeats the key 'workflowId' in one object",
            id="duplicate-top",
        ),
        pytest.param(
            start_body('"variables": {"amount": "1", "amount": "2"}'),
            "the request body repeats the key 'amount' in one object",
            id="duplicate-nested",
        ),
        pytest.param(
            start_body('"variables": {"x": NaN}'), "the request body contains NaN, which JSON does not allow", id="nan"
        ),
        pytest.param(
            start_body('"data": {"x": [-Infinity]}'),
            "the request body contains -Infinity, which JSON does not allow",
            id="negative-infinity",
        ),
        pytest.param(
            start_body('"variables": {"x": 1e400}'),
            "the request body contains the number 1e400, which is too large for a 64-bit float",
            id="overflowing-float",
        ),
        pytest.param(
            start_body('"variables": {"x": ' + "9" * 5000 + "}"),
            "the request body contains an integer of more than 64 digits",
            id="5000-digits",
        ),
        pytest.param(
            start_body('"data": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000),
            "the request body is nested deeper than 64 levels",
            id="depth-bomb",
        ),
        pytest.param(b"\xff\xfe{}", "the request body is not UTF-8", id="not-utf8"),
        pytest.param(
            start_body('"variables": '), "the request body is not valid JSON: Expecting value", id="truncated"
        ),
    ],
)
async def test_sandbox_rejects_hostile_body(
    sandbox: Sandbox, sandbox_http: httpx2.AsyncClient, body: bytes, message: str
) -> None:
    response = await sandbox_http.post(SESSIONS_PATH, content=body)

    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "Bad Request"
    assert error["message"].startswith(message)
    recorded = sandbox.state.requests[-1]
    assert recorded.kind == "start"
    assert recorded.status == 400
    assert recorded.body is None


async def test_sandbox_rejects_repeated_form_parameter(sandbox: Sandbox) -> None:
    form = f"grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={PLANTED_SECRET}&scope=a&scope=b"
    async with httpx2.AsyncClient(base_url=sandbox.url) as http:
        response = await http.post(
            TOKEN_PATH, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "duplicated parameter"}


# Raw JSON over a real stdio subprocess, for input the SDK client cannot produce


class RawStdioServer:
    """A `serve --sandbox` subprocess driven with hand-written JSON-RPC lines."""

    def __init__(self, process: Process, server_log: Path) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.server_log = server_log
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def initialize(self) -> None:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        await self.send_line(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}))
        await self.read_until(0)
        await self.send_line(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    async def send_line(self, line: str) -> None:
        await self._stdin.send(line.encode() + b"\n")

    async def call_tool(self, request_id: int, name: str, raw_arguments: str) -> None:
        """Send a tools/call whose arguments are raw JSON text, which may be hostile on purpose."""
        params = '{"name": ' + json.dumps(name) + ', "arguments": ' + raw_arguments + "}"
        await self.send_line(f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "tools/call", "params": {params}}}')

    async def read_until(self, request_id: int) -> list[dict[str, Any]]:
        """Read messages until the response to `request_id`, and return every message read."""
        messages: list[dict[str, Any]] = []
        with anyio.fail_after(30):
            while True:
                line = await self._stdout.receive_until(b"\n", 16 * 1024 * 1024)
                message = json.loads(line)
                messages.append(message)
                if message.get("id") == request_id:
                    return messages

    async def recorded_starts(self) -> list[dict[str, Any]]:
        """Return the start requests in the embedded sandbox's request log."""
        return [entry for entry in await read_sandbox_log(self.server_log.read_text()) if entry["kind"] == "start"]


@pytest.fixture
async def raw_server(tmp_path: Path) -> AsyncIterator[RawStdioServer]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
    }
    server_log = tmp_path / "server.log"
    with server_log.open("w") as errlog:
        process = await anyio.open_process(
            [SANDBOX_SERVER.command, *SANDBOX_SERVER.args],
            stderr=errlog,
            env={**inherited, **(SANDBOX_SERVER.env or {})},
        )
        try:
            server = RawStdioServer(process, server_log)
            await server.initialize()
            yield server
        finally:
            # Closing stdin is the stdio transport's shutdown signal.
            if process.stdin is not None:
                await process.stdin.aclose()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


DEPTH_BOMB = '{"a": ' * 100_000 + "1" + "}" * 100_000
START_EXAMPLE = json.dumps({"workflow_id": EXAMPLE_WORKFLOW, "variables": EXAMPLE_VARIABLES})


async def test_stdio_depth_bomb_survived(raw_server: RawStdioServer) -> None:
    await raw_server.call_tool(1, START_TOOL, '{"workflow_id": "' + EXAMPLE_WORKFLOW + '", "data": ' + DEPTH_BOMB + "}")
    await raw_server.call_tool(2, START_TOOL, START_EXAMPLE)

    messages = await raw_server.read_until(2)

    assert raw_server.process.returncode is None
    result = messages[-1]["result"]
    assert result["isError"] is False, result
    assert result["structuredContent"]["session_id"].startswith("wfs_")
    starts = await raw_server.recorded_starts()
    assert len(starts) == 1
    assert "data" not in starts[0]["body"]


async def test_stdio_depth_bomb_answered(raw_server: RawStdioServer) -> None:
    await raw_server.call_tool(1, START_TOOL, '{"workflow_id": "' + EXAMPLE_WORKFLOW + '", "data": ' + DEPTH_BOMB + "}")
    await raw_server.call_tool(2, START_TOOL, START_EXAMPLE)

    messages = await raw_server.read_until(2)

    answers = [message for message in messages if message.get("id") in (1, None)]
    assert len(answers) == 1
    assert answers[0]["id"] == 1
    assert answers[0]["error"]["code"] == -32600
    assert "nested deeper than 64 levels" in answers[0]["error"]["message"]
    assert raw_server.process.returncode is None


async def test_stdio_bomb_without_id_gets_parse_error(raw_server: RawStdioServer) -> None:
    await raw_server.send_line('{"jsonrpc": "2.0", "method": "tools/call", "params": ' + DEPTH_BOMB + "}")
    await raw_server.call_tool(2, START_TOOL, START_EXAMPLE)

    messages = await raw_server.read_until(2)

    answers = [message for message in messages if message.get("id") is None]
    assert len(answers) == 1
    assert answers[0]["error"]["code"] == -32700


@pytest.mark.parametrize(
    "raw_arguments",
    [
        pytest.param(
            '"workflow_id": "025d0114c92e16d3af8b5e72a1", "workflow_id": "' + EXAMPLE_WORKFLOW + '"', id="workflow-id"
        ),
        pytest.param(
            '"workflow_id": "' + EXAMPLE_WORKFLOW + '", "variables": {"amount": "1", "amount": "2"}', id="variable"
        ),
        pytest.param('"workflow_id": "' + EXAMPLE_WORKFLOW + '", "data": {"a": [{"b": 1, "b": 2}]}', id="nested-data"),
        pytest.param('"workflow_id": "' + EXAMPLE_WORKFLOW + '", "data": {"n": ' + "9" * 4400 + "}", id="huge-integer"),
    ],
)
async def test_stdio_ambiguous_arguments_rejected(raw_server: RawStdioServer, raw_arguments: str) -> None:
    # pydantic keeps the last of two equal keys, so the server would run another workflow than the first key names.
    await raw_server.call_tool(1, START_TOOL, "{" + raw_arguments + "}")
    await raw_server.call_tool(2, STATUS_TOOL, '{"session_id": "wfs_' + "A" * 40 + '"}')

    messages = await raw_server.read_until(2)

    answer = next(message for message in messages if message.get("id") == 1)
    assert answer["error"]["code"] == -32600
    assert answer["error"]["message"].startswith("Invalid request: ")
    assert await raw_server.recorded_starts() == []


async def test_sdk_client_gets_error_for_depth_bomb() -> None:
    # Deeper than the server's limit of 64, but within what the SDK client can serialize.
    nested: Any = 1
    for _ in range(150):
        nested = [nested]
    async with Client(SANDBOX_SERVER) as client:
        with anyio.fail_after(20):
            with pytest.raises(MCPError, match="nested deeper than 64 levels"):
                await client.call_tool(START_TOOL, {"workflow_id": EXAMPLE_WORKFLOW, "data": {"a": nested}})
            tools = await client.list_tools()

    assert len(tools.tools) == 2


@pytest.mark.parametrize(
    ("raw_arguments", "field", "problem"),
    [
        pytest.param('"variables": {"amount": NaN}', "variables.amount", "is NaN or infinite", id="nan"),
        pytest.param('"variables": {"amount": Infinity}', "variables.amount", "is NaN or infinite", id="infinity"),
        pytest.param('"variables": {"amount": -Infinity}', "variables.amount", "is NaN or infinite", id="-infinity"),
        pytest.param('"variables": {"amount": 1e400}', "variables.amount", "is NaN or infinite", id="1e400"),
        pytest.param('"data": {"order": [{"total": NaN}]}', "data.order[0].total", "is NaN or infinite", id="data"),
        pytest.param(
            '"data": {"\\u005f_proto__": 1}', "data.__proto__", "reserved JavaScript property", id="escaped-proto"
        ),
    ],
)
async def test_stdio_raw_values_rejected(
    raw_server: RawStdioServer, raw_arguments: str, field: str, problem: str
) -> None:
    await raw_server.call_tool(1, START_TOOL, '{"workflow_id": "' + EXAMPLE_WORKFLOW + '", ' + raw_arguments + "}")

    result = (await raw_server.read_until(1))[-1]["result"]

    assert result["isError"] is True
    message = result["content"][0]["text"]
    assert f"Invalid argument '{field}'" in message
    assert problem in message
    assert await raw_server.recorded_starts() == []
