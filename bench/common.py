"""Shared benchmark helpers: timing statistics, the section format, and the machine description."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata


@dataclass(frozen=True)
class Target:
    """A target from the benchmark plan, whether this run met it, and the measured figures behind the verdict."""

    name: str
    met: bool
    detail: str


@dataclass
class Section:
    """One benchmark's part of docs/benchmarks.md: a heading, Markdown text and tables, and its targets."""

    title: str
    body: str
    targets: list[Target] = field(default_factory=list)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile of `samples` (0.5 for the median, 0.99 for p99), by linear interpolation."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def ms(seconds: float) -> str:
    """Seconds as milliseconds with 2 decimals, for tables."""
    return f"{seconds * 1000:.2f}"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×" if baseline else "n/a"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format `rows` under `headers` as a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def now() -> float:
    return time.perf_counter()


def machine() -> list[tuple[str, str]]:
    """Rows describing this machine and the versions that matter for the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            total_kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
        memory = f"{total_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    rows = [
        ("CPU", f"{cpu}, {os.cpu_count()} logical cores"),
        ("memory", memory or "unknown"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
    ]
    for package in (
        "mcp-avaya-workflows",
        "mcp",
        "httpx2",
        "uvicorn",
        "starlette",
        "pydantic",
        "regex",
        "presidio-analyzer",
        "detect-secrets",
        "psutil",
    ):
        try:
            rows.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    return rows
