"""MCP tool definitions: names, input schemas, annotations and error mapping.

Tool functions accept loosely typed arguments on purpose. The published input
schema describes what to send, and the sanitizer checks what actually
arrived, so a wrong type gets the sanitizer's message naming the field and
the fix instead of a pydantic dump that would echo the caller's values.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from .audit import AuditLog, AuditRecord
from .catalog import WorkflowAccess
from .confirmation import (
    ConfirmationOutcome,
    StartConfirmer,
    StartGate,
    StartNotConfirmedError,
    confirmation_annotation,
    require_confirmation_resolver,
)
from .errors import (
    InvalidInputError,
    RateLimitedError,
    SessionNotFoundError,
    StartOutcomeUnknownError,
    ThrottledError,
    UpstreamError,
)
from .icons import ICONS
from .principal import principal_of
from .redaction import Redactor
from .sanitizer import HANDLE_PATTERN, ID_PATTERN, VARIABLE_NAME_PATTERN, VERSION_PATTERN
from .service import StartedWorkflowSession, WorkflowService, WorkflowSessionStatus
from .typed_tools import build_typed_tools

logger = logging.getLogger(__name__)

START_TOOL = "start_workflow_session"
STATUS_TOOL = "get_workflow_session_status"
# Prefix with which sanitizer and catalog errors name an input variable, such as `variables.order_id`.
VARIABLES_PREFIX = "variables."

_ResultT = TypeVar("_ResultT")


class StartWorkflowSessionArguments(BaseModel):
    """Input schema of start_workflow_session."""

    workflow_id: str = Field(
        description="The Infinity workflow ID, for example 025d010819f98dbc75776be9666.",
        pattern=f"^{ID_PATTERN.pattern}$",
    )
    version: SkipJsonSchema[None] | Annotated[str, StringConstraints(pattern=f"^{VERSION_PATTERN.pattern}$")] = Field(
        None,
        description=(
            "Workflow version label, such as '3'; 'current' is the latest published version. "
            "Leave it out to use the version the operator's catalog sets for the workflow."
        ),
    )
    variables: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description=(
            "Flat map of input variables the workflow reads as {{variables.name}}. "
            f"Names match {VARIABLE_NAME_PATTERN.pattern}; values are strings, numbers, booleans or null."
        ),
    )
    data: dict[str, Any] | None = Field(
        None, description="Optional JSON object passed to the workflow as its data context."
    )


class GetWorkflowSessionStatusArguments(BaseModel):
    """Input schema of get_workflow_session_status."""

    session_id: str = Field(
        description="The session_id returned by start_workflow_session.", pattern=f"^{HANDLE_PATTERN.pattern}$"
    )
    wait_seconds: float = Field(
        0,
        ge=0,
        description=(
            "Seconds to wait for the session to finish before answering. The call returns as soon as the "
            "session ends, or with the current status when the wait is over; progress notifications report "
            "the current module meanwhile. 0 (the default) reads the status at once."
        ),
    )


START_DESCRIPTION = (
    "Start an Avaya Infinity workflow session and return a session_id handle. The workflow starts "
    "running at once and may act on the outside world (tickets, payments, messages), so start it only "
    "when the user asked for it, and never retry a start that may have succeeded. Only workflows the "
    "operator allows can start; the infinity://workflows resource lists them with their input "
    "variables. Follow the session with get_workflow_session_status."
)
STATUS_DESCRIPTION = (
    "Read the status of a workflow session started by start_workflow_session: whether it is still "
    "running, the module it is executing, and its output variables with sensitive values masked. "
    "Pass wait_seconds to wait for the session to finish within one call. Call again while terminal is false."
)


def build_tools(
    get_service: Callable[[Context], WorkflowService],
    audit_log: AuditLog,
    *,
    access: WorkflowAccess,
    redactor: Redactor,
    read_only: bool = False,
    typed_tools: bool = False,
    max_wait_seconds: float = 30.0,
) -> list[Tool]:
    """Create the tools; `get_service` finds the running service from the request context.

    In read-only mode no tool that starts a workflow exists at all, so no client can list or call one.
    With `typed_tools` and a catalog, each catalog workflow also gets its own start tool (see `typed_tools`).
    """
    gate = StartGate(get_service, access, redactor)

    async def run_start(
        ctx: Context,
        audit: AuditRecord,
        *,
        workflow_id: object,
        version: object,
        variables: object,
        data: object,
        confirmation: ConfirmationOutcome,
        variables_as_arguments: bool = False,
    ) -> StartedWorkflowSession:
        """Start a workflow once the confirmation gate lets it through, as every start tool does.

        With `variables_as_arguments`, errors name an input variable as the argument it is, such as
        `order_id` for `variables.order_id`, for tools whose arguments are the variables.
        """

        async def start() -> StartedWorkflowSession:
            if isinstance(workflow_id, str) and ID_PATTERN.fullmatch(workflow_id):
                # Recorded before the gate, so that a start it rejects still names its workflow.
                audit.workflow_id = workflow_id
            gate.enforce(workflow_id, confirmation)
            service = get_service(ctx)
            return await service.start(
                audit.principal, workflow_id=workflow_id, version=version, variables=variables, data=data, audit=audit
            )

        return await _run(
            audit, audit_log, start(), starts_workflow=True, variables_as_arguments=variables_as_arguments
        )

    async def start_workflow_session(
        ctx: Context,
        confirmation: ConfirmationOutcome,
        workflow_id: Any = None,
        version: Any = None,
        variables: Any = None,
        data: Any = None,
    ) -> StartedWorkflowSession:
        audit = AuditRecord(START_TOOL, principal_of(ctx))
        if workflow_id is None:
            missing = _missing("workflow_id", "Pass the ID of the workflow to start")
            return await _run(audit, audit_log, _fail(missing), starts_workflow=True)
        return await run_start(
            ctx,
            audit,
            workflow_id=workflow_id,
            version=version,
            variables=variables,
            data=data,
            confirmation=confirmation,
        )

    async def get_workflow_session_status(
        ctx: Context, session_id: Any = None, wait_seconds: Any = None
    ) -> WorkflowSessionStatus:
        audit = AuditRecord(STATUS_TOOL, principal_of(ctx))
        if session_id is None:
            missing = _missing("session_id", "Pass the session_id that start_workflow_session returned")
            return await _run(audit, audit_log, _fail(missing))
        service = get_service(ctx)
        operation = service.status(
            audit.principal, session_id=session_id, wait_seconds=wait_seconds, audit=audit, progress=ctx.report_progress
        )
        return await _run(audit, audit_log, operation)

    # The SDK runs this resolver before the tool body and passes its outcome as `confirmation`.
    start_workflow_session.__annotations__["confirmation"] = confirmation_annotation(StartConfirmer(gate))
    start = Tool.from_function(
        start_workflow_session,
        name=START_TOOL,
        title="Start workflow session",
        description=START_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Start workflow session",
            read_only_hint=False,
            # A workflow may move money or message customers, so clients should confirm before a start.
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
        icons=ICONS,
        structured_output=True,
    )
    status = Tool.from_function(
        get_workflow_session_status,
        name=STATUS_TOOL,
        title="Get workflow session status",
        description=STATUS_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Get workflow session status",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
        icons=ICONS,
        structured_output=True,
    )
    require_confirmation_resolver(start)
    start.parameters = _input_schema(StartWorkflowSessionArguments)
    status.parameters = _input_schema(GetWorkflowSessionStatusArguments)
    status.parameters["properties"]["wait_seconds"]["maximum"] = max_wait_seconds
    if read_only:
        return [status]
    tools = [start, status]
    if typed_tools:
        tools.extend(build_typed_tools(access.catalog, start, gate, run_start, used_names={START_TOOL, STATUS_TOOL}))
    return tools


def argument_names(tool: Tool) -> frozenset[str]:
    """Return the argument names a tool accepts: the properties of its published input schema."""
    return frozenset(tool.parameters.get("properties", {}))


def check_argument_names(tool: str, known: frozenset[str], arguments: Mapping[str, Any]) -> None:
    """Raise `InvalidInputError` for an argument name that is not in `known`, the names `tool` defines."""
    for name in arguments:
        if name in known:
            continue
        import difflib  # imported here: only a rejected name needs it, and the stdio server starts faster without it

        close = difflib.get_close_matches(str(name), sorted(known), n=1)
        if close:
            hint = f"Did you mean '{close[0]}'?"
        elif known:
            hint = f"Valid arguments are {', '.join(sorted(known))}"
        else:
            hint = f"{tool} takes no arguments"
        raise InvalidInputError(display_name(str(name)), f"is not an argument of {tool}", hint)


def display_name(name: str) -> str:
    """Show a caller-chosen argument name safely inside quotes: ASCII only, quotes escaped, at most 64 characters."""
    if not name:
        return "(empty name)"
    return json.dumps(name)[1:-1].replace("'", "\\u0027")[:64]


class ArgumentNamesMiddleware:
    """Reject tool calls with unknown argument names before the SDK drops them.

    The SDK ignores arguments its schema does not name, so a misspelled `variabls`
    would start a workflow without its variables. A start cannot be undone, so a
    typo gets an error the model can correct instead.
    """

    def __init__(self, tools: list[Tool], audit_log: AuditLog, principal: Callable[[], str]) -> None:
        self._names = {tool.name: argument_names(tool) for tool in tools}
        self._audit_log = audit_log
        self._principal = principal

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params
        if ctx.method == "tools/call" and isinstance(params, Mapping):
            tool, arguments = params.get("name"), params.get("arguments")
            if not isinstance(tool, str) or tool not in self._names:
                # A call to a tool this server does not offer, such as the start tool in read-only mode, is
                # exactly the attempt an operator wants on record. The SDK then answers it as an unknown tool.
                audit = AuditRecord(display_name(str(tool)), self._principal())
                audit.reject("unknown_tool")
                self._audit_log.write(audit)
            elif isinstance(arguments, Mapping):
                try:
                    check_argument_names(tool, self._names[tool], arguments)
                except InvalidInputError as exc:
                    logger.info("tool.rejected_arguments tool=%s field=%r", tool, exc.field)
                    audit = AuditRecord(tool, self._principal())
                    audit.reject("invalid_input", "arguments")
                    self._audit_log.write(audit)
                    text = f"Error executing tool {tool}: {exc}"
                    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        return await call_next(ctx)


def _input_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for spec in schema.get("properties", {}).values():
        # An optional argument without a default value is simply left out, so a null default adds no information.
        if "default" in spec and spec["default"] is None and "anyOf" not in spec:
            del spec["default"]
    schema["additionalProperties"] = False
    return schema


INTERNAL_ERROR_MESSAGE = (
    "The server hit an internal error and did not finish the call. For a start, the workflow may or may "
    "not have started, so do not start it again; ask the operator to check the server log."
)


def _missing(field: str, fix: str) -> InvalidInputError:
    return InvalidInputError(field, "is missing", fix)


async def _fail(error: Exception) -> Any:
    raise error


async def _run(
    audit: AuditRecord,
    audit_log: AuditLog,
    operation: Awaitable[_ResultT],
    *,
    starts_workflow: bool = False,
    variables_as_arguments: bool = False,
) -> _ResultT:
    """Await `operation`, turning expected failures into tool errors the model can act on, and audit the call.

    `starts_workflow` marks a call of a start tool, whose errors state whether the workflow was started.
    `variables_as_arguments` names a bad input variable as an argument in the error, not in the audit record.
    """
    try:
        return await operation
    except InvalidInputError as exc:
        # The audit record keeps only the top-level argument, `variables`, never a variable's name.
        audit.reject("invalid_input", exc.field)
        if variables_as_arguments and exc.field.startswith(VARIABLES_PREFIX):
            exc = InvalidInputError(exc.field.removeprefix(VARIABLES_PREFIX), exc.problem, exc.fix)
        raise ToolError(str(exc)) from None
    except StartNotConfirmedError as exc:
        logger.info(
            "tool.start_not_confirmed tool=%s workflow_id=%s outcome=%s", audit.tool, audit.workflow_id, exc.outcome
        )
        audit.reject(exc.outcome)
        raise ToolError(str(exc)) from None
    except SessionNotFoundError as exc:
        audit.reject("not_found")
        raise ToolError(str(exc)) from None
    except UpstreamError as exc:
        # The log keeps the endpoint, status and request ID; the model gets only the safe summary.
        logger.warning("tool.upstream_error tool=%s error=%s request_id=%s", audit.tool, exc, exc.request_id)
        unknown = isinstance(exc, StartOutcomeUnknownError)
        audit.reject("start_outcome_unknown" if unknown else _outcome_of(exc))
        message = exc.public_message
        if isinstance(exc, RateLimitedError) and exc.retry_after:
            message += _wait_hint(exc)
        if starts_workflow and not unknown:
            # Every other failure of a start happened before Infinity could run it, so the model may try again.
            message += " The workflow was not started."
        raise ToolError(message) from None
    except Exception:
        # A bug must not show the model a stack trace or internals; the log keeps them for the operator.
        logger.exception("tool.internal_error tool=%s", audit.tool)
        audit.reject("internal_error")
        raise ToolError(INTERNAL_ERROR_MESSAGE) from None
    except BaseException:
        # Cancellation, such as a client that gave up: the call still leaves a trace in the audit log.
        audit.reject(audit.outcome_if_cancelled)
        raise
    finally:
        audit_log.write(audit)


def _wait_hint(exc: RateLimitedError) -> str:
    seconds = max(1, math.ceil(exc.retry_after or 0))
    unit = "second" if seconds == 1 else "seconds"
    if isinstance(exc, ThrottledError):
        return f" The next slot is about {seconds} {unit} away."
    return f" Infinity asked to wait {seconds} {unit}."


def _outcome_of(exc: UpstreamError) -> str:
    """`upstream_` and the error class in snake case, such as `upstream_rate_limited` or `upstream_unavailable`."""
    name = type(exc).__name__.removesuffix("Error").removeprefix("Upstream")
    words = "".join(f"_{char.lower()}" if char.isupper() else char for char in name).lstrip("_")
    return f"upstream_{words}"
