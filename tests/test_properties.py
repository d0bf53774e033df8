"""Property tests: arbitrary JSON never crashes a tool, and planted secrets never leave the server.

Each property drives the real server through an MCP client against the loopback sandbox. The
client and sandbox live in a blocking portal, so that hypothesis can call them from its
synchronous test body.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult

from mcp_avaya_workflows.audit import AuditLog
from mcp_avaya_workflows.catalog import parse_catalog
from mcp_avaya_workflows.redaction import Redactor
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG, SandboxState, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL, display_name

from .conftest import CLIENT_ID, ECHO_WORKFLOW, PLANTED_SECRET, capture_logs, make_settings, with_echo_workflow
from .corpus import luhn_complete

EXAMPLES = 2000
REVEALED = ("publicNote", "ticketLabel")
ECHO_CATALOG = f"""
[[workflows]]
id = "{ECHO_WORKFLOW}"
name = "Echo"
accepts_data = true

[workflows.outputs]
{REVEALED[0]} = "reveal"
{REVEALED[1]} = "reveal"
"""
ARGUMENT_NAMES = {START_TOOL: {"workflow_id", "version", "variables", "data"}, STATUS_TOOL: {"session_id"}}
FIELD_ERROR = re.compile(r"Invalid argument '([^']+)'")


@dataclass
class Harness:
    portal: BlockingPortal
    client: Client
    sandbox: SandboxState
    logs: io.StringIO
    audit: io.StringIO
    notifications: list[str] = field(default_factory=list)

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments)

    def mark(self) -> tuple[int, int, int]:
        return len(self.logs.getvalue()), len(self.audit.getvalue()), len(self.notifications)

    def exits_since(self, mark: tuple[int, int, int]) -> str:
        """What left the server since `mark` besides tool results: log lines, audit records, notifications."""
        logs, audit, notifications = mark
        return "\n".join(
            [self.logs.getvalue()[logs:], self.audit.getvalue()[audit:], *self.notifications[notifications:]]
        )


@asynccontextmanager
async def _serving(
    catalog_text: str, logs: io.StringIO, audit: io.StringIO, notes: list[str]
) -> AsyncIterator[tuple[Client, SandboxState]]:
    state = SandboxState(CLIENT_ID, PLANTED_SECRET, workflows=with_echo_workflow(), time_scale=0)
    redactor = Redactor()
    redactor.add_secret(PLANTED_SECRET)

    async def on_log(params: Any) -> None:
        notes.append(json.dumps(params.model_dump(mode="json")))

    with capture_logs(logs, redactor):
        async with running_sandbox(state) as url:
            catalog = parse_catalog(catalog_text, "catalog.toml")
            server = build_server(
                make_settings(url, allow_any_workflow=False),
                redactor=redactor,
                catalog=catalog,
                audit_log=AuditLog(redactor, audit),
            )
            async with Client(server, logging_callback=on_log) as client:
                yield client, state


@contextmanager
def harness(catalog_text: str) -> Iterator[Harness]:
    logs, audit, notes = io.StringIO(), io.StringIO(), []
    with start_blocking_portal() as portal:
        serving = portal.wrap_async_context_manager(_serving(catalog_text, logs, audit, notes))
        with serving as (client, state):
            yield Harness(portal, client, state, logs, audit, notes)


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


# --- arbitrary JSON to both tools --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
CATALOG_IDS = list(parse_catalog(SANDBOX_CATALOG.read_text(encoding="utf-8"), "sandbox").entries)


def _arguments(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    names = (
        st.sampled_from(sorted(ARGUMENT_NAMES[tool]))
        | st.sampled_from(["__proto__", "variabls", ""])
        | st.text(max_size=10)
    )
    special: dict[str, st.SearchStrategy[Any]] = {
        "workflow_id": st.sampled_from(CATALOG_IDS) | st.text(max_size=30) | json_values,
        "session_id": st.just("wfs_" + "A" * 40) | st.text(max_size=60) | json_values,
        "variables": st.dictionaries(
            st.sampled_from(["amount", "order_id", "phone", "__proto__", "x"]) | st.text(max_size=8),
            json_values,
            max_size=4,
        )
        | json_values,
    }
    return st.dictionaries(names, json_values, max_size=5).flatmap(
        lambda base: st.fixed_dictionaries({name: special.get(name, st.just(value)) for name, value in base.items()})
    )


@pytest.fixture(scope="module")
def sandbox_catalog_harness() -> Iterator[Harness]:
    with harness(SANDBOX_CATALOG.read_text(encoding="utf-8")) as running:
        yield running


@pytest.mark.timeout(600)
@pytest.mark.parametrize("tool", [START_TOOL, STATUS_TOOL])
def test_arbitrary_arguments_rejected_by_field(sandbox_catalog_harness: Harness, tool: str) -> None:
    running = sandbox_catalog_harness

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(arguments=_arguments(tool))
    def check(arguments: dict[str, Any]) -> None:
        result = running.call(tool, arguments)
        text = text_of(result)
        if not result.is_error:
            assert result.structured_content is not None
            return
        assert "Traceback" not in text
        assert "internal error" not in text
        match = FIELD_ERROR.search(text)
        if match is None:
            # The one rejection that names no argument is an unknown handle, which must not say why.
            assert "Workflow session not found" in text, text
            return
        if "is not an argument of" in text:
            assert match.group(1) in {display_name(str(name)) for name in arguments}, text
            return
        assert re.split(r"[.\[]", match.group(1), maxsplit=1)[0] in ARGUMENT_NAMES[tool], text

    check()


# --- planted secrets in workflow output --------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    text: str  # as placed in the output
    forbidden: tuple[str, ...]  # none of these may appear in anything the server emits


def _card(digits: str, separator: str) -> Planted:
    groups = [digits[index : index + 4] for index in range(0, len(digits), 4)]
    return Planted(separator.join(groups), (digits, " ".join(groups), "-".join(groups)))


def _secret_form(form: str) -> Planted:
    encoded = {
        "raw": PLANTED_SECRET,
        "url": quote(PLANTED_SECRET, safe=""),
        "base64": base64.b64encode(PLANTED_SECRET.encode()).decode(),
        "json": json.dumps(PLANTED_SECRET).strip('"').replace("-", "\\u002d"),
    }[form]
    return Planted(encoded, (PLANTED_SECRET, encoded))


planted_values = st.one_of(
    st.sampled_from(["raw", "url", "base64", "json"]).map(_secret_form),
    st.builds(
        lambda prefix, digits, separator: _card(luhn_complete(prefix, 16, digits), separator),
        st.sampled_from(["4", "51", "6011"]),
        st.randoms(use_true_random=False),
        st.sampled_from(["", " ", "-", ".", "\u200b", " - "]),
    ),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=16).map(
        lambda body: Planted("AKIA" + body, ("AKIA" + body,))
    ),
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=36, max_size=200).map(
        lambda body: Planted("ghs_" + body, ("ghs_" + body,))
    ),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=24, max_size=40).map(
        lambda body: Planted("sk_live_" + body, ("sk_live_" + body,))
    ),
    st.integers(100, 665).map(lambda area: Planted(f"{area:03d}-42-1234", (f"{area:03d}-42-1234",))),
)
words = st.text("abcdefghij klmnopqrstuvwxyz", max_size=20)
names = st.from_regex(r"[a-z][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(lambda name: name not in REVEALED)


@st.composite
def outputs_with_secrets(draw: st.DrawFn) -> tuple[dict[str, Any], list[Planted], dict[str, str]]:
    planted: list[Planted] = []

    def leaf() -> str:
        if draw(st.booleans()):
            secret = draw(planted_values)
            planted.append(secret)
            return f"{draw(words)} {secret.text} {draw(words)}"
        return draw(words)

    def tree(depth: int) -> Any:
        kind = draw(st.sampled_from(["leaf", "list", "object"] if depth < 3 else ["leaf"]))
        if kind == "leaf":
            return leaf()
        if kind == "list":
            return [tree(depth + 1) for _ in range(draw(st.integers(1, 3)))]
        return {draw(names): tree(depth + 1) for _ in range(draw(st.integers(1, 3)))}

    outputs = {draw(names): tree(1) for _ in range(draw(st.integers(1, 4)))}
    revealed = {name: draw(words) for name in REVEALED if draw(st.booleans())}
    outputs.update(revealed)
    return outputs, planted, revealed


@pytest.fixture(scope="module")
def echo_harness() -> Iterator[Harness]:
    with harness(ECHO_CATALOG) as running:
        yield running


@pytest.mark.timeout(600)
def test_planted_output_secrets_never_leak(echo_harness: Harness) -> None:
    running = echo_harness

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=outputs_with_secrets())
    def check(case: tuple[dict[str, Any], list[Planted], dict[str, str]]) -> None:
        outputs, planted, revealed = case
        mark = running.mark()
        started = running.call(START_TOOL, {"workflow_id": ECHO_WORKFLOW, "data": outputs})
        assert not started.is_error, text_of(started)
        assert started.structured_content is not None
        status = running.call(STATUS_TOOL, {"session_id": started.structured_content["session_id"]})
        assert not status.is_error, text_of(status)
        assert status.structured_content is not None
        assert status.structured_content["terminal"]
        emitted = "\n".join(
            [
                started.model_dump_json(),
                status.model_dump_json(),
                json.dumps(status.structured_content, ensure_ascii=False),
                running.exits_since(mark),
            ]
        )
        for secret in planted:
            for form in secret.forbidden:
                assert form not in emitted, (form, secret.text)
        variables = status.structured_content["output_variables"]
        for name, value in revealed.items():
            assert variables[name] == value
            assert name not in status.structured_content["masked_variables"]

    check()
