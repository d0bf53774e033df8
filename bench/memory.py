"""Memory: the resident set size (RSS) of our server process idle and after many status calls, over stdio.

Our server (`mcp-avaya-workflows serve`) and the bare echo server of `bench.baselines` run as stdio
subprocesses of a real MCP client, as a desktop client launches them. RSS comes from psutil. "Idle" is
after startup and one `tools/list`. Then ours answers `get_workflow_session_status` without a wait on one
completed session of Avaya's example workflow, and the echo server answers `echo`, with RSS read every
tenth of the calls. The sandbox is a process of its own. There is no target: the figures show the
footprint and whether it grows with calls.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import psutil
from mcp import Client

from mcp_avaya_workflows.tools import STATUS_TOOL

from .baselines import ECHO_TEXT
from .common import Section, table
from .harness import (
    SandboxProcess,
    check_result,
    echo_stdio,
    new_handle_key,
    our_stdio,
    scratch_folder,
    server_env,
    start_example,
    stdio_client_logged,
)

MIB = 1024 * 1024
SAMPLES = 10


@dataclass
class Trace:
    """RSS in bytes when idle, once the calls are set up, and after each tenth of the calls."""

    label: str
    idle: int = 0
    ready: int = 0
    after: list[tuple[int, int]] = field(default_factory=list)


def run(quick: bool) -> Section:
    calls = 1_000 if quick else 10_000
    traces = anyio.run(_measure, calls)
    return _section(traces, calls)


async def _measure(calls: int) -> list[Trace]:
    with scratch_folder() as folder, contextlib.ExitStack() as processes:
        sandbox = SandboxProcess(folder)
        processes.callback(sandbox.stop)
        env = server_env(sandbox, folder, new_handle_key())
        async with stdio_client_logged(our_stdio(env, folder), folder / "ours-stdio.log") as client:
            ours = await _trace("ours", client, "mcp_avaya_workflows", calls, _status_call)
        async with stdio_client_logged(echo_stdio(folder), folder / "echo-stdio.log") as client:
            echo = await _trace("echo", client, "bench.baselines", calls, _echo_call)
    return [ours, echo]


def _server_process(module: str) -> psutil.Process:
    """Find the stdio server that the MCP client launched as a child of this process."""
    found = [
        child
        for child in psutil.Process().children()
        if module in child.cmdline() and child.cmdline()[0] == sys.executable and "sandbox" not in child.cmdline()
    ]
    if len(found) != 1:
        raise RuntimeError(f"expected one child process running {module}, found {[p.cmdline() for p in found]}")
    return found[0]


async def _trace(
    label: str,
    client: Client,
    module: str,
    calls: int,
    make_call: Callable[[Client], Awaitable[Callable[[], Awaitable[None]]]],
) -> Trace:
    server = _server_process(module)
    await client.list_tools()
    trace = Trace(label, idle=server.memory_info().rss)
    call = await make_call(client)
    trace.ready = server.memory_info().rss
    step = calls // SAMPLES
    for done in range(1, calls + 1):
        await call()
        if done % step == 0:
            trace.after.append((done, server.memory_info().rss))
    return trace


async def _status_call(client: Client) -> Callable[[], Awaitable[None]]:
    handle = await start_example(client)

    async def call() -> None:
        check_result(await client.call_tool(STATUS_TOOL, {"session_id": handle}), STATUS_TOOL)

    return call


async def _echo_call(client: Client) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        check_result(await client.call_tool("echo", {"text": ECHO_TEXT}), "echo")

    return call


def _mib(size: int) -> str:
    return f"{size / MIB:.1f}"


def _growth_sentence(trace: Trace) -> str:
    (first_count, first_rss), (last_count, last_rss) = trace.after[0], trace.after[-1]
    per_call = (last_rss - first_rss) / (last_count - first_count)
    return (
        f"From {first_count:,} to {last_count:,} calls, {trace.label} grew {(last_rss - first_rss) / 1024:.0f} KiB, "
        f"{per_call:.0f} bytes a call."
    )


def _section(traces: list[Trace], calls: int) -> Section:
    rows = []
    growth_lines = []
    for trace in traces:
        first_count, first_rss = trace.after[0]
        last_count, last_rss = trace.after[-1]
        # The first tenth warms caches, pools and the allocator's arenas, so growth is counted after it.
        per_call = (last_rss - first_rss) / (last_count - first_count)
        rows.append(
            (
                trace.label,
                _mib(trace.idle),
                _mib(trace.ready),
                _mib(first_rss),
                _mib(last_rss),
                _mib(last_rss - trace.idle),
                f"{per_call:.0f}",
            )
        )
        growth_lines.append(
            f"{trace.label}: " + ", ".join(f"{count:,} calls {_mib(rss)} MiB" for count, rss in trace.after)
        )
    ours, echo = traces
    body = [
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "",
        f"{calls:,} calls for each server, over stdio. Our server runs with its default settings, except a rate "
        "limit of 1,000,000 requests a minute, and writes its logs and audit trail to files.",
        "",
        table(
            [
                "server",
                "idle RSS (MiB)",
                "set up (MiB)",
                f"after {calls // SAMPLES:,} calls (MiB)",
                f"after {calls:,} calls (MiB)",
                "growth since idle (MiB)",
                f"growth a call from {calls // SAMPLES:,} to {calls:,} calls (bytes)",
            ],
            rows,
        ),
        "",
        f"Idle, ours takes {_mib(ours.idle)} MiB against {_mib(echo.idle)} MiB for the echo server "
        f"({ours.idle / echo.idle:.2f} times): the difference is what our imports and our own state cost. "
        '"Set up" is after ours has started the session that it then reads; that first start fetches the '
        "upstream token and opens the upstream connection. The echo server needs no setup.",
        "",
        " ".join(_growth_sentence(trace) for trace in traces)
        + " This run does not show whether growth continues past the last call. `tests/test_load.py` checks "
        "that memory traced by tracemalloc grows less than 512 KiB from the second to the last batch of 1,000 "
        "in-memory status calls, out of 10,000.",
        "",
        "RSS every tenth of the calls:",
        "",
        *[f"- {line}" for line in growth_lines],
    ]
    return Section("Memory", "\n".join(body), [])
