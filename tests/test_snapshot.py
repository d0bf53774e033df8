"""What the server publishes, compared with the committed snapshots in tests/snapshots/.

Each snapshot contains the initialize result's server info, capabilities and instructions, and the full
tools/list, resources/list, resources/templates/list and prompts/list, for the sandbox's catalog in
one configuration. A change to any name, title, description or schema fails here with a diff, so it
is made on purpose. To accept a deliberate change, regenerate the files and commit them:

    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import BaseModel

from mcp_avaya_workflows import __version__
from mcp_avaya_workflows.sandbox import SANDBOX_CATALOG
from mcp_avaya_workflows.server import build_server

from .conftest import make_settings

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
MODES: dict[str, dict[str, Any]] = {
    "default": {},
    "read_only": {"read_only": True},
    "typed_tools": {"typed_tools": True},
}
LISTINGS = ["tools/list", "resources/list", "resources/templates/list", "prompts/list"]
# Nothing listens here: listing the server's features never reaches Infinity.
UNUSED_UPSTREAM = "http://127.0.0.1:9"


def dump(items: list[BaseModel]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]


async def list_everything(client: Client) -> dict[str, list[dict[str, Any]]]:
    return {
        "tools/list": dump(list((await client.list_tools()).tools)),
        "resources/list": dump(list((await client.list_resources()).resources)),
        "resources/templates/list": dump(list((await client.list_resource_templates()).resource_templates)),
        "prompts/list": dump(list((await client.list_prompts()).prompts)),
    }


def server_for(mode: str) -> Any:
    settings = make_settings(UNUSED_UPSTREAM, catalog=SANDBOX_CATALOG, allow_any_workflow=False, **MODES[mode])
    return build_server(settings)


async def published(mode: str) -> dict[str, Any]:
    """Return what a client sees of the server in `mode`, with the version string replaced by a placeholder."""
    async with Client(server_for(mode), mode="legacy") as client:
        initialized = client.session.initialize_result
        assert initialized is not None
        server_info = initialized.server_info.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert server_info["version"] == __version__
        server_info["version"] = "<version>"
        snapshot: dict[str, Any] = {
            "initialize": {
                "serverInfo": server_info,
                "capabilities": initialized.capabilities.model_dump(mode="json", by_alias=True, exclude_none=True),
                "instructions": initialized.instructions,
            },
            **await list_everything(client),
        }
    return snapshot


def render(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("mode", list(MODES))
async def test_published_features_match_snapshot(mode: str) -> None:
    path = SNAPSHOTS / f"{mode}.json"
    actual = render(await published(mode))
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    command = f"UPDATE_SNAPSHOTS=1 python -m pytest tests/{Path(__file__).name}"
    hint = f"If the change is intended, run `{command}` and commit tests/snapshots/{path.name}."
    if not path.exists():
        pytest.fail(f"The snapshot {path.name} is missing. {hint}")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"snapshots/{path.name} (committed)",
                tofile=f"{mode} (this server)",
            )
        )
        pytest.fail(f"What the server publishes in {mode} mode changed:\n{diff}\n{hint}", pytrace=False)


@pytest.mark.parametrize("mode", list(MODES))
async def test_modern_era_lists_the_same(mode: str) -> None:
    async with Client(server_for(mode), mode="legacy") as legacy:
        expected = await list_everything(legacy)
    async with Client(server_for(mode), mode="2026-07-28") as modern:
        actual = await list_everything(modern)

    for listing in LISTINGS:
        assert actual[listing] == expected[listing], listing
