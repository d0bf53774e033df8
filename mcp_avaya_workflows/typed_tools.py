"""Optional tools that each start one catalog workflow, with its input variables as typed arguments.

With `AVAYA_WORKFLOWS_TYPED_TOOLS=true`, a catalog entry named "Payment Failure Assistance" becomes a
tool `start_payment_failure_assistance` whose input schema lists the entry's inputs with their type,
enum, pattern, maximum length and description, plus `version` when the entry allows several. A call
takes the same path as start_workflow_session: the confirmation gate, the sanitizer, the catalog check,
the audit record and the error messages.

Catalog input names need not be Python identifiers (`_ref` and `class` are valid names), and the SDK
builds a tool's arguments from its function's parameters. So these tools take no SDK-parsed arguments:
their functions read the arguments from the request itself, publish the input schema built here, and
leave every value check to the sanitizer and the catalog, as start_workflow_session does.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from mcp.server.mcpserver.tools import Tool

from .audit import AuditRecord
from .catalog import Catalog, CatalogEntry
from .confirmation import (
    ConfirmationOutcome,
    Precheck,
    StartConfirmation,
    StartGate,
    confirmation_annotation,
    require_confirmation_resolver,
)
from .principal import principal_of
from .service import StartedWorkflowSession

logger = logging.getLogger(__name__)

# MCP allows tool names of up to 128 characters. These stay within 64, a limit some model APIs set on function names.
MAX_TOOL_NAME_LENGTH = 64
TOOL_NAME_PREFIX = "start_"
VERSION_ARGUMENT = "version"


class StartRunner(Protocol):
    """The start path every start tool shares: confirmation gate, sanitizer, catalog, audit and error mapping."""

    async def __call__(
        self,
        ctx: Context,
        audit: AuditRecord,
        *,
        workflow_id: object,
        version: object,
        variables: object,
        data: object,
        confirmation: ConfirmationOutcome,
        variables_as_arguments: bool = False,
    ) -> StartedWorkflowSession: ...


def build_typed_tools(
    catalog: Catalog | None, start_tool: Tool, gate: StartGate, run_start: StartRunner, *, used_names: set[str]
) -> list[Tool]:
    """Create one start tool per catalog entry, in catalog order, with `start_tool`'s annotations and icons.

    `used_names` contains the tool names already in use, and each new name is added to it.
    """
    if catalog is None:
        logger.warning(
            "typed_tools.no_catalog: AVAYA_WORKFLOWS_TYPED_TOOLS is on, but no workflow catalog is loaded, so no "
            "per-workflow tools are listed; set AVAYA_WORKFLOWS_CATALOG to use them"
        )
        return []
    tools = []
    for entry in catalog.entries.values():
        name = tool_name_for(entry, used_names)
        used_names.add(name)
        if len(entry.allowed_versions()) > 1 and not offers_version(entry):
            logger.warning(
                "typed_tools.no_version_argument tool=%s workflow_id=%s: an input is named %r, so this tool always "
                "starts the catalog's default version; use start_workflow_session for another version",
                name,
                entry.id,
                VERSION_ARGUMENT,
            )
        tools.append(_typed_tool(entry, name, start_tool, gate, run_start))
    return tools


def tool_name_for(entry: CatalogEntry, used_names: set[str]) -> str:
    """Name the tool of `entry`: `start_` and its name in ASCII snake case, unlike any of `used_names`.

    A name with no ASCII letters or digits, such as one in another script, falls back to the workflow ID.
    """
    limit = MAX_TOOL_NAME_LENGTH - len(TOOL_NAME_PREFIX)
    stem = (_snake_case(entry.name) or _snake_case(entry.id) or "workflow")[:limit].rstrip("_")
    name = TOOL_NAME_PREFIX + stem
    counter = 2
    while name in used_names:
        suffix = f"_{counter}"
        name = TOOL_NAME_PREFIX + stem[: limit - len(suffix)].rstrip("_") + suffix
        counter += 1
    return name


def _snake_case(text: str) -> str:
    # Letters with accents keep their base letter, such as "é" becoming "e". Other non-ASCII characters are dropped.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", ascii_text).lower()
    return re.sub(r"[^a-z0-9]+", "_", words).strip("_")


def offers_version(entry: CatalogEntry) -> bool:
    """Tell whether the tool of `entry` has a `version` argument: the entry allows several, and no input is so named."""
    return len(entry.allowed_versions()) > 1 and VERSION_ARGUMENT not in entry.inputs


def typed_input_schema(entry: CatalogEntry) -> dict[str, Any]:
    """Return the JSON Schema of the tool's arguments: the entry's inputs, and `version` when it is offered."""
    properties: dict[str, Any] = {}
    for name, spec in entry.inputs.items():
        schema: dict[str, Any] = {"type": spec.type}
        if spec.description:
            schema["description"] = spec.description
        if spec.enum is not None:
            schema["enum"] = list(spec.enum)
        if spec.pattern is not None:
            # A catalog pattern must match the whole value, but a JSON Schema pattern matches anywhere, so anchor it.
            # NOTE: the server checks values with the `regex` package, whose syntax is wider than the
            # ECMA-262 syntax clients use, so a client may not understand every catalog pattern.
            schema["pattern"] = f"^(?:{spec.pattern})$"
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
        properties[name] = schema
    if offers_version(entry):
        properties[VERSION_ARGUMENT] = {
            "type": "string",
            "enum": list(entry.allowed_versions()),
            "description": f"Workflow version label. Leave it out to use {entry.version!r}, the catalog's default.",
        }
    result: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name, spec in entry.inputs.items() if spec.required]
    if required:
        result["required"] = required
    result["additionalProperties"] = False
    return result


def call_arguments(ctx: Context) -> Mapping[str, Any]:
    """Return the arguments of the `tools/call` request being served, as the client sent them."""
    params = ctx.request_context.params
    arguments = params.get("arguments") if params is not None else None
    return arguments if isinstance(arguments, Mapping) else {}


def split_arguments(entry: CatalogEntry, arguments: Mapping[str, Any]) -> tuple[object, dict[str, Any]]:
    """Split a typed tool's arguments into the version and the input variables. A null argument counts as absent."""
    variables = {name: value for name, value in arguments.items() if value is not None}
    version = variables.pop(VERSION_ARGUMENT, None) if offers_version(entry) else None
    return version, variables


class TypedStartConfirmer:
    """The resolver of a typed tool's `confirmation` parameter, which reads the call's arguments from the request."""

    def __init__(self, gate: StartGate, entry: CatalogEntry) -> None:
        self._gate = gate
        self._entry = entry

    async def __call__(self, ctx: Context) -> Elicit[StartConfirmation] | Precheck:
        version, variables = split_arguments(self._entry, call_arguments(ctx))
        return await self._gate.precheck(
            ctx, workflow_id=self._entry.id, version=version, variables=variables, data=None
        )


def _typed_tool(entry: CatalogEntry, name: str, start_tool: Tool, gate: StartGate, run_start: StartRunner) -> Tool:
    async def start_catalog_workflow(ctx: Context, confirmation: ConfirmationOutcome) -> StartedWorkflowSession:
        version, variables = split_arguments(entry, call_arguments(ctx))
        audit = AuditRecord(name, principal_of(ctx))
        return await run_start(
            ctx,
            audit,
            workflow_id=entry.id,
            version=version,
            variables=variables,
            data=None,
            confirmation=confirmation,
            variables_as_arguments=True,
        )

    # The SDK runs this resolver before the tool body and passes its outcome as `confirmation`.
    start_catalog_workflow.__annotations__["confirmation"] = confirmation_annotation(TypedStartConfirmer(gate, entry))
    title = f"Start {entry.name}"
    assert start_tool.annotations is not None
    tool = Tool.from_function(
        start_catalog_workflow,
        name=name,
        title=title,
        description=_description(entry),
        # The same hints as start_workflow_session, because these tools start workflows just the same.
        annotations=start_tool.annotations.model_copy(update={"title": title}),
        icons=start_tool.icons,
        structured_output=True,
    )
    require_confirmation_resolver(tool)
    tool.parameters = typed_input_schema(entry)
    return tool


def _description(entry: CatalogEntry) -> str:
    parts = [f"Start the Avaya Infinity workflow {entry.name!r} ({entry.id}) and return a session_id handle."]
    if entry.description:
        parts.append(entry.description)
    parts.append(
        "The arguments are the workflow's input variables. The workflow starts running at once and may act "
        "on the outside world, so start it only when the user asked for it, and never retry a start that "
        "may have succeeded."
    )
    if entry.confirm:
        parts.append("The user is asked to confirm before it starts.")
    parts.append("Follow the session with get_workflow_session_status.")
    return " ".join(parts)
