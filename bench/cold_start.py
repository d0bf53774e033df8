"""Cold start: the time from spawning the server to its first `tools/list` response over stdio.

An MCP client launches a stdio server for each session, so this delay is paid before the first tool call.
Each subject is a fresh `python` process driven through the raw JSON-RPC handshake over pipes
(`initialize`, `notifications/initialized`, `tools/list`), timed from just before the spawn to the
`tools/list` response. The baseline is the bare `MCPServer` with one echo tool from `bench/baselines.py`,
launched and timed the same way. Subjects are interleaved round by round, with the order rotated each round,
so a change in machine load hits all of them.

Our server runs `serve` with dummy credentials and an Infinity URL on a loopback port that accepts
connections and never responds. Startup must not contact upstream, and the benchmark checks that by
counting the connections that port receives.

The import profile comes from `python -X importtime`, run several times; each module's figure is the median.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from .common import Section, Target, median, now, percentile, ratio, table

ROOT = Path(__file__).resolve().parent.parent
# The last commit before the stdio path loaded authlib, joserfc, the HTTP clients and the catalog parsers
# lazily. The benchmark runs the package from this commit as the "before" subject.
BEFORE_COMMIT = "511739a8b90724864ea6a1a68df3f7a903a60cad"
PROTOCOL_VERSION = "2025-11-25"
TARGET_RATIO = 1.2
TIMES = "\N{MULTIPLICATION SIGN}"
# A process that has not responded to `tools/list` by then has failed, and the benchmark stops with its stderr.
STARTUP_TIMEOUT_SECONDS = 60.0
BARE_IMPORTS = "import mcp.server.mcpserver, mcp.server.stdio"
CLI_IMPORTS = "import mcp_avaya_workflows.cli"
SERVE_IMPORTS = (
    "import mcp_avaya_workflows.cli, mcp_avaya_workflows.server, mcp_avaya_workflows.stdio, "
    "mcp_avaya_workflows.lifecycle"
)
# Processes without a server print this line when they are ready, and are timed to it: their exit would
# add the interpreter's shutdown, which no server pays before its first response.
READY = "print('ready', flush=True)"
# Loads the stdio path, then times what it no longer does at startup: importing authlib and joserfc, and
# creating the token provider's OAuth client and the Infinity client's HTTP client. It calls private
# members because that work otherwise happens only inside a token request or an upstream call.
DEFERRED_WORK = """
import time
import httpx2
from pydantic import SecretStr
import mcp_avaya_workflows.server
from mcp_avaya_workflows.auth import TokenProvider
from mcp_avaya_workflows.client import InfinityClient
from mcp_avaya_workflows.redaction import Redactor

timeout = httpx2.Timeout(5.0)
redactor = Redactor()
tokens = TokenProvider(
    token_url="http://127.0.0.1:9/token", client_id="bench-client", client_secret=SecretStr("bench-secret"),
    scope=None, leeway_seconds=60, timeout=timeout, redactor=redactor,
)
client = InfinityClient(base_url="http://127.0.0.1:9", tokens=tokens, redactor=redactor, timeout=timeout)
started = time.perf_counter()
tokens._oauth_client()
client._http
from joserfc import jws
print(time.perf_counter() - started, flush=True)
"""
IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


@dataclass(frozen=True)
class Subject:
    """One way of starting a process, and whether it is timed to its `tools/list` response or to a line it prints."""

    key: str
    label: str
    arguments: tuple[str, ...]
    python_path: Path
    handshake: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        return [sys.executable, *self.arguments]

    def shown(self) -> str:
        """Return the command line as the report prints it, without this machine's paths."""
        return " ".join(["python", *(f'"{argument}"' if " " in argument else argument for argument in self.arguments)])


def run(quick: bool) -> Section:
    rounds = 5 if quick else 30
    profile_runs = 3 if quick else 10
    with ExitStack() as stack:
        # Startup must not contact this listener, which accepts connections and never responds.
        upstream = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=128))
        before_path, before_note = _extract_before(stack)
        subjects = _subjects(upstream.getsockname()[1], before_path)
        samples = _measure(subjects, rounds)
        profiles = _profiles(before_path, profile_runs)
        deferred = [_deferred_once() for _ in range(profile_runs)]
        upstream_connections = _count_connections(upstream)
    counts = (rounds, profile_runs)
    return _section(subjects, samples, profiles, deferred, counts, before_note, upstream_connections)


def _subjects(upstream_port: int, before_path: Path | None) -> list[Subject]:
    upstream = {
        "AVAYA_WORKFLOWS_INFINITY_URL": f"http://127.0.0.1:{upstream_port}",
        "AVAYA_WORKFLOWS_CLIENT_ID": "bench-client",
        "AVAYA_WORKFLOWS_CLIENT_SECRET": secrets.token_urlsafe(24),
    }
    subjects = [
        Subject("python", "interpreter only", ("-c", READY), ROOT, handshake=False),
        Subject(
            "sdk",
            "import the SDK's server and stdio modules",
            ("-c", f"{BARE_IMPORTS}; {READY}"),
            ROOT,
            handshake=False,
        ),
        Subject(
            "bare",
            "bare `MCPServer`, one tool (baseline)",
            ("-m", "bench.baselines", "echo", "--transport", "stdio"),
            ROOT,
        ),
        Subject(
            "ours", "mcp-avaya-workflows `serve`", ("-m", "mcp_avaya_workflows", "serve"), ROOT, extra_env=upstream
        ),
    ]
    if before_path is not None:
        subjects.append(
            Subject(
                "before",
                f"mcp-avaya-workflows `serve` at commit {BEFORE_COMMIT[:7]} (before lazy loading)",
                ("-m", "mcp_avaya_workflows", "serve"),
                before_path,
                extra_env=upstream,
            )
        )
    subjects.append(
        Subject(
            "sandbox",
            "mcp-avaya-workflows `serve --sandbox` (includes the sandbox's startup)",
            ("-m", "mcp_avaya_workflows", "serve", "--sandbox"),
            ROOT,
        )
    )
    return subjects


def _measure(subjects: Sequence[Subject], rounds: int) -> dict[str, list[float]]:
    """Time every subject once per round, rotating the order each round, after one discarded round that warms caches."""
    samples: dict[str, list[float]] = {subject.key: [] for subject in subjects}
    for round_number in range(rounds + 1):
        shift = round_number % len(subjects)
        for subject in [*subjects[shift:], *subjects[:shift]]:
            seconds = _start_once(subject)
            if round_number > 0:
                samples[subject.key].append(seconds)
    return samples


def _environment(python_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a timed process: no inherited server settings, and bytecode caching on.

    The children may write `__pycache__` even where PYTHONDONTWRITEBYTECODE is set, as an installed package
    has its bytecode compiled. Without the cache, a changed or extracted module would be compiled at every start.
    """
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AVAYA_WORKFLOWS_", "INFINITY_", "CLIENT_"))
        and key not in {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
    }
    return {
        **inherited,
        "PYTHONPATH": str(python_path),
        "AVAYA_WORKFLOWS_HANDLE_KEYS": Fernet.generate_key().decode(),
        "AVAYA_WORKFLOWS_AUDIT_LOG": "off",
        **(extra or {}),
    }


def _start_once(subject: Subject) -> float:
    """Spawn `subject` and return the seconds until its `tools/list` response, or its first line without a handshake."""
    env = _environment(subject.python_path, subject.extra_env)
    with tempfile.TemporaryDirectory() as workdir, tempfile.TemporaryFile() as stderr:
        # The working directory is empty, so no `.env` file changes the settings.
        started = now()
        process = subprocess.Popen(
            subject.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=workdir,
        )
        watchdog = threading.Timer(STARTUP_TIMEOUT_SECONDS, process.kill)
        watchdog.start()
        try:
            if subject.handshake:
                elapsed = _handshake(process, started)
            else:
                assert process.stdout is not None
                if not process.stdout.readline():
                    raise RuntimeError("the process exited without printing a line")
                elapsed = now() - started
        except (RuntimeError, OSError, ValueError) as exc:
            process.kill()
            process.wait()
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{subject.shown()} failed: {exc}\n{tail}") from None
        finally:
            watchdog.cancel()
        _stop(process)
        if subject.handshake is False and process.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{subject.shown()} exited with {process.returncode}:\n{stderr.read().decode()[-2000:]}")
        return elapsed


def _handshake(process: subprocess.Popen[bytes], started: float) -> float:
    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def send(message: dict[str, object]) -> None:
        stdin.write(json.dumps(message).encode() + b"\n")
        stdin.flush()

    def receive(request_id: int) -> dict[str, object]:
        while True:
            line = stdout.readline()
            if not line:
                raise RuntimeError(f"the process closed stdout before responding to request {request_id}")
            message = json.loads(line)
            if isinstance(message, dict) and message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"request {request_id} failed: {message['error']}")
                return message

    client_info = {"name": "bench-cold-start", "version": "1"}
    initialize = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": client_info}
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize})
    receive(1)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    response = receive(2)
    elapsed = now() - started
    result = response.get("result")
    if not isinstance(result, dict) or not result.get("tools"):
        raise RuntimeError(f"tools/list returned no tools: {response}")
    return elapsed


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Close stdin, which ends a stdio server, and wait for the exit."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _count_connections(listener: socket.socket) -> int:
    """Accept and count the connections waiting on `listener`: any one is a startup that contacted upstream."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def _extract_before(stack: ExitStack) -> tuple[Path | None, str]:
    """Extract the package at `BEFORE_COMMIT` into a temporary folder, or return why it is not available."""
    git = shutil.which("git")
    if git is None:
        return None, "git is not installed, so the package before lazy loading could not be measured"
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    archive = folder / "before.tar"
    result = subprocess.run(
        [git, "-C", str(ROOT), "archive", "--output", str(archive), BEFORE_COMMIT, "mcp_avaya_workflows"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        return None, f"commit {BEFORE_COMMIT[:7]} could not be read from the repository ({reason})"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder, ""


def _deferred_once() -> float:
    """Return the seconds that the first upstream request spends on work that startup no longer does."""
    result = subprocess.run(
        [sys.executable, "-c", DEFERRED_WORK],
        capture_output=True,
        text=True,
        env=_environment(ROOT),
        cwd=tempfile.gettempdir(),
        check=True,
    )
    return float(result.stdout.strip())


def _importtime(statement: str, python_path: Path) -> dict[str, tuple[int, int]]:
    """Run `statement` under `-X importtime` and return each module's (self, cumulative) microseconds."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        env=_environment(python_path),
        cwd=tempfile.gettempdir(),
        check=True,
    )
    modules: dict[str, tuple[int, int]] = {}
    for line in result.stderr.splitlines():
        match = IMPORTTIME_LINE.match(line)
        if match:
            modules[match.group(4)] = (int(match.group(1)), int(match.group(2)))
    return modules


@dataclass
class Profile:
    """Median import times of one statement: the total, and the self time summed per top-level package."""

    statement: str
    total_us: float
    by_package_us: dict[str, float]


def _profile_once(statement: str, python_path: Path) -> Profile:
    modules = _importtime(statement, python_path)
    by_package: dict[str, float] = defaultdict(float)
    for name, (self_us, _) in modules.items():
        by_package[name.split(".")[0]] += self_us
    return Profile(statement, sum(self_us for self_us, _ in modules.values()), dict(by_package))


def _profiles(before_path: Path | None, runs: int) -> dict[str, Profile]:
    """Profile the bare server's imports and ours, interleaved run by run as the timings are."""
    statements = {"bare": (BARE_IMPORTS, ROOT), "cli": (CLI_IMPORTS, ROOT), "ours": (SERVE_IMPORTS, ROOT)}
    if before_path is not None:
        statements["before"] = (SERVE_IMPORTS, before_path)
    per_run: dict[str, list[Profile]] = {key: [] for key in statements}
    for _ in range(runs):
        for key, (statement, path) in statements.items():
            per_run[key].append(_profile_once(statement, path))
    return {key: _merge(profiles) for key, profiles in per_run.items()}


def _merge(profiles: list[Profile]) -> Profile:
    """Combine runs of one statement into per-package medians. A package missing from a run counts as 0."""
    packages = {package for profile in profiles for package in profile.by_package_us}
    return Profile(
        profiles[0].statement,
        median([profile.total_us for profile in profiles]),
        {package: median([p.by_package_us.get(package, 0) for p in profiles]) for package in packages},
    )


def _section(
    subjects: Sequence[Subject],
    samples: dict[str, list[float]],
    profiles: dict[str, Profile],
    deferred: list[float],
    counts: tuple[int, int],
    before_note: str,
    upstream_connections: int,
) -> Section:
    rounds, profile_runs = counts
    bare = samples["bare"]
    paired = {
        key: median([value / base for value, base in zip(values, bare, strict=True)]) for key, values in samples.items()
    }
    ours_ms = median(samples["ours"]) * 1000
    bare_ms = median(bare) * 1000
    met = paired["ours"] <= TARGET_RATIO and upstream_connections == 0
    detail = (
        f"median {ours_ms:.0f} ms vs bare MCPServer {bare_ms:.0f} ms, paired ratio {paired['ours']:.2f}{TIMES} "
        f"(target ≤ {TARGET_RATIO}{TIMES})"
    )
    if upstream_connections:
        detail += f"; startup opened {upstream_connections} connection(s) to the Infinity URL"
    if "before" in samples:
        detail += f"; before lazy loading {median(samples['before']) * 1000:.0f} ms, {paired['before']:.2f}{TIMES}"

    lines = _timing_text(subjects, samples, paired, rounds, upstream_connections)
    lines += _lazy_text(samples, paired, deferred, before_note)
    lines += _floor_text(samples, profiles)
    lines += _profile_text(profiles, profile_runs)
    if not met:
        lines += ["", f"**Target not met:** {detail}."]
    return Section(
        title="Cold start",
        body="\n".join(lines),
        targets=[Target(f"stdio cold start ≤ {TARGET_RATIO}{TIMES} a bare MCPServer", met, detail)],
    )


def _timing_text(
    subjects: Sequence[Subject],
    samples: dict[str, list[float]],
    paired: dict[str, float],
    rounds: int,
    upstream_connections: int,
) -> list[str]:
    bare_median = median(samples["bare"])
    rows = [
        (
            subject.label,
            f"`{subject.shown()}`",
            f"{median(samples[subject.key]) * 1000:.0f}",
            f"{percentile(samples[subject.key], 0.9) * 1000:.0f}",
            ratio(median(samples[subject.key]), bare_median),
            f"{paired[subject.key]:.2f}{TIMES}",
        )
        for subject in subjects
    ]
    upstream = (
        "so startup does not contact upstream."
        if upstream_connections == 0
        else "so startup **contacted upstream**, which it must not do."
    )
    return [
        f"Time from spawning a stdio server to its first `tools/list` response: {rounds} rounds after one discarded "
        "warm-up round, with every subject once per round in a rotating order. Every server gets the same raw "
        f"JSON-RPC handshake over pipes: `initialize` with protocol version `{PROTOCOL_VERSION}`, "
        "`notifications/initialized`, then `tools/list`. The two processes without a server are timed to a line "
        "they print once their imports are done, and show the floor: starting Python, and importing the SDK.",
        "",
        "Our server gets dummy credentials and an Infinity URL on a loopback port that accepts connections and "
        f"never responds. During the run that port received {upstream_connections} connection(s), {upstream} "
        "The paired ratio is the median over rounds of the subject's time divided by the bare server's time in "
        "the same round, which cancels most load changes between rounds. The target uses the paired ratio.",
        "",
        table(["subject", "command", "median ms", "p90 ms", "ratio of medians", "paired ratio"], rows),
        "",
    ]


def _lazy_text(
    samples: dict[str, list[float]], paired: dict[str, float], deferred: list[float], before_note: str
) -> list[str]:
    deferred_text = (
        f"That work now happens at the first upstream request instead, where it took a median of "
        f"{median(deferred) * 1000:.0f} ms over {len(deferred)} runs (p90 {percentile(deferred, 0.9) * 1000:.0f} ms), "
        "once per process."
    )
    changes = (
        "The stdio path no longer imports authlib and joserfc or builds its two HTTP clients, and with them their "
        "TLS contexts, until the first upstream request. It imports `regex`, `tomllib` and `difflib` only when "
        "a catalog or an error message needs them. " + deferred_text
    )
    if "before" not in samples:
        return [f"The package before lazy loading was not measured: {before_note}. {changes}", ""]
    before_ms = median(samples["before"]) * 1000
    ours_ms = median(samples["ours"]) * 1000
    return [
        f"Lazy loading, measured in this run: before: {before_ms:.0f} ms, paired ratio "
        f"{paired['before']:.2f}{TIMES}; after: {ours_ms:.0f} ms, paired ratio {paired['ours']:.2f}{TIMES}. " + changes,
        "",
    ]


def _floor_text(samples: dict[str, list[float]], profiles: dict[str, Profile]) -> list[str]:
    def paired_difference_ms(key: str) -> float:
        return median([value - base for value, base in zip(samples[key], samples["bare"], strict=True)]) * 1000

    python_ms = median(samples["python"]) * 1000
    sdk_share = median([value / base for value, base in zip(samples["sdk"], samples["bare"], strict=True)])
    own = profiles["ours"].by_package_us
    text = (
        f"The floor: Python alone starts in {python_ms:.0f} ms, and importing the SDK's server and stdio modules "
        f"takes {sdk_share:.0%} of the bare server's time in the same round. Our server takes a median of "
        f"{paired_difference_ms('ours'):.0f} ms more than the bare server in the same round"
    )
    if "before" in samples:
        text += f", and took {paired_difference_ms('before'):.0f} ms more before lazy loading"
    text += (
        f". In the import profile below, our own modules take {own.get('mcp_avaya_workflows', 0) / 1000:.0f} ms "
        f"and pydantic-settings {own.get('pydantic_settings', 0) / 1000:.0f} ms, while the SDK's packages "
        f"(`mcp_types` and `mcp`) take {(own.get('mcp_types', 0) + own.get('mcp', 0)) / 1000:.0f} ms."
    )
    return [text, ""]


def _profile_text(profiles: dict[str, Profile], runs: int) -> list[str]:
    columns = ["bare", "cli", "ours", *(["before"] if "before" in profiles else [])]
    headers = {
        "bare": "bare server's imports",
        "cli": "our CLI module only",
        "ours": "our stdio serve path",
        "before": f"serve path at {BEFORE_COMMIT[:7]}",
    }
    totals = [(headers[key], f"`{profiles[key].statement}`", f"{profiles[key].total_us / 1000:.0f}") for key in columns]
    ours = profiles["ours"].by_package_us
    before = profiles["before"].by_package_us if "before" in profiles else {}
    ranked = sorted(set(ours) | set(before), key=lambda package: -max(ours.get(package, 0), before.get(package, 0)))
    rows = [
        [f"`{package}`", *(f"{profiles[key].by_package_us.get(package, 0) / 1000:.1f}" for key in columns)]
        for package in ranked[:15]
    ]
    return [
        f"Import profile: `python -X importtime -c STATEMENT`, {runs} runs per statement, interleaved, with the "
        "median of each figure. The profiler adds overhead to every import, so its figures are estimates of "
        "where the time goes, not timings to compare with the table above.",
        "",
        table(["imports", "statement", "total import ms"], totals),
        "",
        "The 15 top-level packages with the most import time on our serve path (before or after), as the sum "
        "of their modules' self times in ms:",
        "",
        table(["package", *(headers[key] for key in columns)], rows),
    ]
