"""Status-call latency: one `get_workflow_session_status` call, without a wait, on a completed session.

A real MCP client (`mcp.Client`) calls our server in memory, over stdio and over HTTP, all against one
sandbox process on loopback whose sessions complete at once. Two baselines run in the same rounds:

- (a) a raw `httpx2` GET of the session's status URL on that sandbox with a valid bearer token, which is
  the request our server sends upstream for each call;
- (b) the bare echo server of `bench.baselines`, one `echo` call over the same transport.

Each round times one call of every subject, in an order that rotates each round, so a change in load
hits all of them alike. The target per transport is that ours takes at most 1.2 times a + b at p50.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx2
from mcp import Client

from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.tools import STATUS_TOOL

from .baselines import ECHO_TEXT, build_echo_server
from .common import Section, Target, now, percentile, ratio, table
from .common import ms as milliseconds
from .harness import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    HttpServerProcess,
    SandboxProcess,
    check_result,
    echo_stdio,
    in_memory_settings,
    log_to_file,
    new_handle_key,
    our_stdio,
    scratch_folder,
    server_env,
    start_example,
    stdio_client_logged,
)

TRANSPORTS = ("in-memory", "stdio", "HTTP")
TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"  # noqa: S105 - a URL path
# Ours may take this many times the sum of the two baselines at p50.
TARGET_FACTOR = 1.2


@dataclass
class Subject:
    key: str
    call: Callable[[], Awaitable[None]]


def run(quick: bool) -> Section:
    warmup, rounds, profile_calls = (10, 50, 50) if quick else (100, 1000, 300)
    samples, profiled, notes = anyio.run(_measure, warmup, rounds, profile_calls)
    return _section(samples, profiled, notes, warmup, rounds, profile_calls)


async def _measure(
    warmup: int, rounds: int, profile_calls: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, float]], list[str]]:
    with scratch_folder() as folder, contextlib.ExitStack() as processes:
        sandbox = SandboxProcess(folder)
        processes.callback(sandbox.stop)
        env = server_env(sandbox, folder, new_handle_key())
        ours_http = HttpServerProcess("ours", folder, env=env)
        processes.callback(ours_http.stop)
        echo_http = HttpServerProcess("echo", folder)
        processes.callback(echo_http.stop)

        async with contextlib.AsyncExitStack() as clients:
            clients.enter_context(log_to_file(folder / "in-memory.log"))
            ours = {
                "in-memory": await clients.enter_async_context(Client(build_server(in_memory_settings(env)))),
                "stdio": await clients.enter_async_context(
                    stdio_client_logged(our_stdio(env, folder), folder / "ours-stdio.log")
                ),
                "HTTP": await clients.enter_async_context(Client(ours_http.url)),
            }
            echo = {
                "in-memory": await clients.enter_async_context(Client(build_echo_server())),
                "stdio": await clients.enter_async_context(
                    stdio_client_logged(echo_stdio(folder), folder / "echo-stdio.log")
                ),
                "HTTP": await clients.enter_async_context(Client(echo_http.url)),
            }
            subjects: list[Subject] = []
            for transport in TRANSPORTS:
                handle = await start_example(ours[transport])
                subjects.append(Subject(f"ours {transport}", _status_call(ours[transport], handle)))
                subjects.append(Subject(f"echo {transport}", _echo_call(echo[transport])))
            # The raw GET reads the status URL that our server's first status call reads.
            await subjects[0].call()
            upstream = await clients.enter_async_context(_upstream_call(sandbox))
            subjects.append(Subject("upstream", upstream))

            samples: dict[str, list[float]] = {subject.key: [] for subject in subjects}
            for round_number in range(warmup + rounds):
                shift = round_number % len(subjects)
                for subject in [*subjects[shift:], *subjects[:shift]]:
                    started = now()
                    await subject.call()
                    elapsed = now() - started
                    if round_number >= warmup:
                        samples[subject.key].append(elapsed)
            profiled = {
                key: await _profile(call, profile_calls)
                for key, call in (("ours", subjects[0].call), ("echo", subjects[1].call), ("upstream", upstream))
            }
        tokens = sandbox.count("token")
    notes = [
        f"The sandbox issued {tokens} token(s) in the whole run, where one for each of our three servers and one "
        "for the raw GET make 4."
    ]
    return samples, profiled, notes


def _status_call(client: Client, handle: str) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        result = await client.call_tool(STATUS_TOOL, {"session_id": handle})
        check_result(result, STATUS_TOOL)
        if not result.structured_content or result.structured_content.get("status") != "COMPLETED":
            raise RuntimeError(f"the session is not complete: {result.structured_content}")

    return call


def _echo_call(client: Client) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        check_result(await client.call_tool("echo", {"text": ECHO_TEXT}), "echo")

    return call


@contextlib.asynccontextmanager
async def _upstream_call(sandbox: SandboxProcess) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Yield a raw GET of the status URL our server last read, with a token of its own, on a kept-alive connection."""
    status_paths = [entry["path"] for entry in sandbox.requests() if entry["kind"] == "status"]
    if not status_paths:
        raise RuntimeError("no status request reached the sandbox, so there is no status URL to read")
    async with httpx2.AsyncClient(base_url=sandbox.url, timeout=30) as http:
        grant = {"grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID}
        response = await http.post(TOKEN_PATH, data={**grant, "client_secret": SANDBOX_CLIENT_SECRET})
        response.raise_for_status()
        headers = {"Authorization": f"Bearer {response.json()['access_token']}", "Accept": "application/json"}

        async def call() -> None:
            reply = await http.get(status_paths[-1], headers=headers)
            reply.raise_for_status()
            reply.json()

        yield call


async def _profile(call: Callable[[], Awaitable[None]], calls: int) -> dict[str, float]:
    """Run `calls` calls under cProfile and return the CPU seconds per call that each group of code took."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await call()
    profiler.disable()
    return {group: seconds / calls for group, seconds in _self_time_by_group(pstats.Stats(profiler)).items()}


# Groups of code for the CPU profile, matched against each function's file path in this order.
GROUPS = (
    ("mcp_avaya_workflows/redaction.py", "our redaction (`Redactor`)"),
    ("mcp_avaya_workflows/", "the rest of our server"),
    ("/httpx2/", "httpx2, httpcore2 and h11 (the upstream request)"),
    ("/httpcore2/", "httpx2, httpcore2 and h11 (the upstream request)"),
    ("/h11/", "httpx2, httpcore2 and h11 (the upstream request)"),
    ("/jsonschema/", "jsonschema (the client checks structured output)"),
    ("/referencing/", "jsonschema (the client checks structured output)"),
    ("/mcp/", "the MCP SDK, client and server"),
    ("/mcp_types/", "the MCP SDK, client and server"),
    ("/cryptography/", "cryptography (opening the sealed handle)"),
    ("/tenacity/", "tenacity (the retry policy)"),
    ("/pydantic", "pydantic"),
    ("/logging/", "logging"),
    ("/asyncio/", "asyncio and anyio"),
    ("/anyio/", "asyncio and anyio"),
    ("selectors.py", "asyncio and anyio"),
)
OTHER = "other"
# Time spent blocked in epoll is waiting for the sandbox, not CPU.
WAITING = "{method 'poll' of 'select.epoll' objects}"


def _group_of(path: str) -> str:
    return next((group for marker, group in GROUPS if marker in path), OTHER)


def _self_time_by_group(stats: pstats.Stats) -> dict[str, float]:
    """Sum each function's own time by group. A built-in function's time goes to the groups of its callers."""
    totals: dict[str, float] = {}
    entries = stats.stats  # type: ignore[attr-defined]
    for (path, _line, name), (_calls, _primitive, own, _cumulative, callers) in entries.items():
        if name == WAITING:
            continue
        if path != "~":
            totals[_group_of(path)] = totals.get(_group_of(path), 0.0) + own
            continue
        caller_time = sum(timing[2] for timing in callers.values()) or 1.0
        for (caller_path, _caller_line, _caller_name), timing in callers.items():
            group = _group_of(caller_path)
            totals[group] = totals.get(group, 0.0) + own * timing[2] / caller_time
    return totals


def _section(
    samples: dict[str, list[float]],
    profiled: dict[str, dict[str, float]],
    notes: list[str],
    warmup: int,
    rounds: int,
    profile_calls: int,
) -> Section:
    profile_text, largest = _profile_text(profiled, profile_calls)
    upstream_p50 = percentile(samples["upstream"], 0.5)
    upstream_p99 = percentile(samples["upstream"], 0.99)
    rows = []
    targets = []
    for transport in TRANSPORTS:
        ours, echo = samples[f"ours {transport}"], samples[f"echo {transport}"]
        ours_p50, ours_p99 = percentile(ours, 0.5), percentile(ours, 0.99)
        echo_p50, echo_p99 = percentile(echo, 0.5), percentile(echo, 0.99)
        baseline_p50, baseline_p99 = upstream_p50 + echo_p50, upstream_p99 + echo_p99
        met = ours_p50 <= TARGET_FACTOR * baseline_p50
        rows.append(
            (
                transport,
                milliseconds(ours_p50),
                milliseconds(ours_p99),
                milliseconds(echo_p50),
                milliseconds(echo_p99),
                milliseconds(baseline_p50),
                ratio(ours_p50, baseline_p50),
                ratio(ours_p99, baseline_p99),
                "yes" if met else "**no**",
            )
        )
        detail = (
            f"p50 {milliseconds(ours_p50)} ms, {ratio(ours_p50, baseline_p50)} of a + b "
            f"({milliseconds(baseline_p50)} ms); p99 {milliseconds(ours_p99)} ms, {ratio(ours_p99, baseline_p99)}"
        )
        if not met:
            detail += f"; {milliseconds(ours_p50 - baseline_p50)} ms a call beyond a + b; in the profile, {largest}"
        targets.append(Target(f"Status-call latency, {transport}: ours at most 1.2 times a + b at p50", met, detail))

    body = [
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "",
        f"{rounds} timed rounds after {warmup} warm-up rounds; every subject made one call per round. The "
        "sandbox runs as its own process. Our servers run with their default settings, except a rate limit of "
        "1,000,000 requests a minute, so the limiter is passed but never waits, and the audit trail and logs "
        "go to files. Over stdio and HTTP each server is its own process (`mcp-avaya-workflows serve`, "
        "`serve --transport http`, and `python -m bench.baselines echo`). In memory, the server runs in the "
        "benchmark's own event loop. The session is Avaya's example workflow, whose status carries 12 output "
        "variables that the server masks or drops.",
        "",
        f"(a) raw GET of the status URL: p50 {milliseconds(upstream_p50)} ms, p99 {milliseconds(upstream_p99)} ms.",
        "",
        table(
            [
                "transport",
                "ours p50 (ms)",
                "ours p99 (ms)",
                "(b) echo p50 (ms)",
                "(b) echo p99 (ms)",
                "a + b p50 (ms)",
                "ours / (a + b), p50",
                "ours / (a + b), p99",
                "target met",
            ],
            rows,
        ),
        "",
        *notes,
        "",
        profile_text,
    ]
    body += ["", BEFORE_SCAN_CACHE]
    failed = [target for target in targets if not target.met]
    if failed:
        body += ["", "Not met: " + "; ".join(f"{target.name}: {target.detail}" for target in failed) + "."]
    return Section("Status-call latency", "\n".join(body), targets)


# Figures of the same full benchmark on the same machine, recorded before the redaction layer remembered the
# credential scan of short strings. Later runs measure the code as it is now.
BEFORE_SCAN_CACHE = (
    "Before and after: the profile showed the credential scan of every short string in each result as the "
    "largest cost of our own, so the redaction layer now remembers the scan of strings up to 128 characters. "
    "The full run just before that change measured ours at p50 3.35 ms in memory (2.03 times a + b), 5.06 ms "
    "over stdio (1.62 times) and 6.29 ms over HTTP (1.46 times), on this machine on 2026-12-05."
)


def _profile_text(profiled: dict[str, dict[str, float]], calls: int) -> tuple[str, str]:
    """Return the profile's text and table, and a phrase naming the code with the largest extra CPU time."""
    ours = profiled["ours"]
    baseline = {
        group: profiled["echo"].get(group, 0.0) + profiled["upstream"].get(group, 0.0)
        for group in set(profiled["echo"]) | set(profiled["upstream"])
    }
    # Sorted by the extra time ours spends, largest last.
    groups = sorted(set(ours) | set(baseline), key=lambda group: ours.get(group, 0.0) - baseline.get(group, 0.0))
    extra_total = sum(ours.values()) - sum(baseline.values())

    rows = []
    for group in reversed(groups):
        extra = ours.get(group, 0.0) - baseline.get(group, 0.0)
        share = f"{extra / extra_total * 100:.0f} %" if extra_total > 0 else "n/a"
        rows.append(
            (
                group,
                milliseconds(ours.get(group, 0.0)),
                milliseconds(baseline.get(group, 0.0)),
                milliseconds(extra),
                share,
            )
        )
    rows.append(
        ("total", milliseconds(sum(ours.values())), milliseconds(sum(baseline.values())), milliseconds(extra_total), "")
    )

    top = groups[-1]
    largest = (
        f"{top} takes the largest share of the extra CPU time, "
        f"{(ours.get(top, 0.0) - baseline.get(top, 0.0)) / extra_total * 100:.0f} %"
        if extra_total > 0
        else "ours takes no extra CPU time"
    )

    text = "\n".join(
        [
            f"Where the in-memory time goes: after the timed rounds, {calls} calls of ours, of the echo server and "
            "of the raw GET run under cProfile, client and server in one process. Each function's own CPU time is "
            "summed by the code it belongs to. A built-in function, such as a regular expression's `sub`, counts "
            "for the code that called it, and time blocked waiting for the sandbox is left out. cProfile slows "
            "every call, so the shares matter more than the milliseconds.",
            "",
            table(
                ["code", "ours (ms a call)", "a + b (ms a call)", "ours minus a + b (ms)", "share of the extra"], rows
            ),
        ]
    )
    return text, largest
