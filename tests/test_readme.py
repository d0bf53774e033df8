"""The README's promises that CI relies on."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_two_commands() -> None:
    commands = quick_start_commands()

    assert len(commands) == 2
    assert commands[0].endswith("mcp-avaya-workflows demo")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_readme_test_command() -> None:
    test_command = quick_start_commands()[1]
    ci_script = (ROOT / ".ci" / "run").read_text()

    assert test_command in ci_script.splitlines()


def test_client_manifests_match_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    snippets = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", readme, re.S)[:2]]

    assert json.loads((ROOT / "manifests" / "claude_desktop_config.json").read_text()) == snippets[0]
    assert json.loads((ROOT / "manifests" / "vscode-mcp.json").read_text()) == snippets[1]
