"""Polling: upstream status reads per completed bounded wait, for workflows of about 1, 10 and 60 seconds.

A client follows each session the way the server's instructions ask: it calls
`get_workflow_session_status` with `wait_seconds` at the server's cap again and again until `terminal` is
true. During a wait the server reads the status 0.5 s after the previous read, then 1.6 times later each
time up to 5 s, and 0.5 s again whenever the current module changes. The sandbox, in this process, logs
every status read, so the reads of each session are counted exactly. The baseline is a naive client
that reads the status every second, computed from the same run: the session's measured duration / 1 s.
Each scripted workflow has 4 modules of equal length. There is no target: the figures show what the wait
costs the tenant's request quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
from mcp import Client

from mcp_avaya_workflows.sandbox import ModuleScript, SandboxState, WorkflowScript, load_workflows, running_sandbox
from mcp_avaya_workflows.server import build_server
from mcp_avaya_workflows.settings import Settings
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

from .common import Section, median, now, table
from .harness import (
    RATE_LIMIT_BURST,
    RATE_LIMIT_PER_MINUTE,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    check_result,
    log_to_file,
    new_handle_key,
    scratch_folder,
)

MODULES = 4
NAIVE_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Followed:
    """One session followed to its end: its scripted length, the calls it took and how long it ran."""

    scripted_seconds: float
    waits: int
    seconds: float
    reads: int = 0


def run(quick: bool) -> Section:
    # Full: three sessions of each length, followed at the same time. Quick: one each, without the 60 s one.
    sessions = {1.0: 1, 10.0: 1} if quick else {1.0: 3, 10.0: 3, 60.0: 3}
    followed, cap = anyio.run(_measure, sessions)
    return _section(followed, cap, quick)


def _workflow_id(seconds: float, index: int) -> str:
    return f"bench_poll_{seconds:g}s_{index}"


def _workflows(sessions: dict[float, int]) -> dict[str, WorkflowScript]:
    workflows = load_workflows()
    for seconds, count in sessions.items():
        modules = tuple(
            ModuleScript(id=f"mod_step_{step:03d}", seconds=seconds / MODULES, outputs={"step": step})
            for step in range(1, MODULES + 1)
        )
        for index in range(count):
            workflow_id = _workflow_id(seconds, index)
            workflows[workflow_id] = WorkflowScript(id=workflow_id, name=f"Polling {seconds:g} s", modules=modules)
    return workflows


def _settings(url: str, folder: Path) -> Settings:
    return Settings(
        infinity_url=url,
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        handle_keys=new_handle_key(),
        allow_any_workflow=True,
        audit_log=str(folder / "audit.jsonl"),
        rate_limit_per_minute=float(RATE_LIMIT_PER_MINUTE),
        rate_limit_burst=int(RATE_LIMIT_BURST),
        _env_file=None,  # type: ignore[call-arg]
    )


async def _measure(sessions: dict[float, int]) -> tuple[dict[str, Followed], float]:
    state = SandboxState(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, workflows=_workflows(sessions), time_scale=1.0)
    followed: dict[str, Followed] = {}
    with scratch_folder() as folder, log_to_file(folder / "polling.log"):
        async with running_sandbox(state) as url:
            settings = _settings(url, folder)
            async with Client(build_server(settings)) as client, anyio.create_task_group() as group:
                for seconds, count in sessions.items():
                    for index in range(count):
                        workflow_id = _workflow_id(seconds, index)
                        group.start_soon(_follow, client, workflow_id, seconds, settings.max_wait_seconds, followed)
    reads = _reads_by_workflow(state)
    counted = {
        key: Followed(item.scripted_seconds, item.waits, item.seconds, reads[key]) for key, item in followed.items()
    }
    return counted, settings.max_wait_seconds


async def _follow(client: Client, workflow_id: str, scripted: float, cap: float, followed: dict[str, Followed]) -> None:
    """Start the workflow, then wait at the cap until the session is terminal."""
    started = await client.call_tool(START_TOOL, {"workflow_id": workflow_id})
    check_result(started, START_TOOL)
    assert started.structured_content is not None
    handle = started.structured_content["session_id"]
    began = now()
    waits = 0
    while True:
        result = await client.call_tool(STATUS_TOOL, {"session_id": handle, "wait_seconds": cap})
        check_result(result, STATUS_TOOL)
        waits += 1
        if result.structured_content and result.structured_content["terminal"]:
            break
    followed[workflow_id] = Followed(scripted, waits, now() - began)


def _reads_by_workflow(state: SandboxState) -> dict[str, int]:
    """Count the logged status reads of each session, by the workflow it runs."""
    workflow_of = {session.id: session.workflow_id for session in state.sessions()}
    reads: dict[str, int] = {}
    for entry in state.requests:
        if entry.kind != "status":
            continue
        workflow_id = workflow_of.get(entry.path.rstrip("/").rsplit("/", 1)[-1])
        if workflow_id is not None:
            reads[workflow_id] = reads.get(workflow_id, 0) + 1
    return reads


def _section(followed: dict[str, Followed], cap: float, quick: bool) -> Section:
    rows = []
    by_length: dict[float, list[Followed]] = {}
    for item in followed.values():
        by_length.setdefault(item.scripted_seconds, []).append(item)
    for scripted, items in sorted(by_length.items()):
        reads = median([item.reads for item in items])
        waits = median([item.waits for item in items])
        seconds = median([item.seconds for item in items])
        naive = seconds / NAIVE_INTERVAL_SECONDS
        rows.append(
            (
                f"{scripted:g}",
                len(items),
                f"{seconds:.1f}",
                f"{waits:g}",
                f"{reads:g}",
                f"{reads / waits:.1f}",
                f"{reads / seconds:.2f}",
                f"{naive:.1f}",
                f"{reads / naive:.2f}",
                f"{seconds - scripted:.1f}",
            )
        )
    longest = by_length[max(by_length)]
    longest_waits = median([item.waits for item in longest])
    longest_naive = median([item.seconds for item in longest]) / NAIVE_INTERVAL_SECONDS
    body = [
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "",
        f"The cap, `AVAYA_WORKFLOWS_MAX_WAIT_SECONDS`, is {cap:g} s, its default. The sessions run at the same "
        "time against one in-memory server; the figures are medians over the sessions of each length. "
        "A session's time runs from the start call's reply to the reply that reports it terminal, so it "
        "includes the time the server took to notice the end.",
    ]
    if quick:
        body += ["", "This quick run leaves out the 60 s workflow and follows one session of each other length."]
    body += [
        "",
        table(
            [
                "scripted length (s)",
                "sessions",
                "measured length (s)",
                "status calls",
                "upstream reads",
                "reads a call",
                "reads a second",
                "naive reads, 1 a second",
                "ours / naive",
                "seconds to notice the end",
            ],
            rows,
        ),
        "",
        f"For the longest workflow, the client made {longest_waits:g} status call(s) in all, where the naive "
        f"client would make about {longest_naive:.0f}, one per read. The server's reads go faster than one a "
        "second after each module change, so on short modules it reads more often than the naive client; on "
        "long ones it backs off to one read in 5 s, so it can notice the end up to 5 s late (last column).",
    ]
    return Section("Polling", "\n".join(body), [])
