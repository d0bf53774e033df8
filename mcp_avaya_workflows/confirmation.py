"""Ask the user to confirm a start of a catalog workflow marked `confirm = true`.

The start tools declare a `confirmation` parameter as `Annotated[..., Resolve(resolver)]`, so the MCP
SDK runs the resolver before the tool body. The resolver checks the arguments exactly as a start would.
Only for a valid start of a workflow that needs confirmation does it return `Elicit`. Up to protocol
2025-11-25 the SDK then sends the question as an `elicitation/create` request in the middle of the call.
From 2026-07-28 it returns the question in an `InputRequiredResult`, and the client calls the tool again
with the user's response and the `request_state`. The tool body receives the outcome, and
`StartGate.enforce` lets the start go ahead only when the workflow needs no confirmation or the user
confirmed it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from mcp.server.elicitation import AcceptedElicitation, CancelledElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.mcpserver.tools import Tool
from mcp.types.version import is_version_at_least
from pydantic import BaseModel, Field

from .catalog import CatalogEntry, WorkflowAccess
from .errors import AvayaWorkflowsError, InvalidInputError
from .redaction import Redactor
from .sanitizer import StartRequest
from .service import WorkflowService

# From this protocol version on, the SDK sends the question in the call's result (`InputRequiredResult`).
INPUT_REQUIRED_VERSION = "2026-07-28"
# A value longer than this is cut in the question, so a 4,096-character variable does not flood the form.
MAX_SHOWN_VALUE_CHARS = 120


class StartConfirmation(BaseModel):
    """The form the user fills in to confirm a start.

    NOTE: an accepted response without content, or with content that does not fit this form, ends the call
    in the SDK with a tool error before the tool body runs. Nothing starts, but the call leaves no audit record.
    """

    confirm: bool = Field(
        False,
        strict=True,
        title="Start the workflow",
        description="Tick to start the workflow now; leave unticked to not start it.",
    )


@dataclass(frozen=True)
class Precheck:
    """The resolver's finding when it sends no question.

    The tool body raises `error`, so the user is never asked to confirm a start that would be rejected.
    `cannot_ask` is the reason a workflow that needs confirmation could not be confirmed on this call.
    Without either, the workflow needs no confirmation.
    """

    error: InvalidInputError | None = None
    cannot_ask: str | None = None


# The type of the `confirmation` parameter's value: the user's response, or a `Precheck` as accepted data.
ConfirmationOutcome = ElicitationResult[StartConfirmation]


class StartNotConfirmedError(AvayaWorkflowsError):
    """A start that needs the user's confirmation did not get it, so nothing was sent to Infinity.

    `outcome` is the audit outcome: `declined`, `cancelled_by_user` or `confirmation_unavailable`.
    """

    def __init__(self, outcome: str, message: str) -> None:
        self.outcome = outcome
        super().__init__(message)


def why_cannot_ask(ctx: Context) -> str | None:
    """Return why the user cannot be asked a confirmation question on this call, or None when they can.

    Before protocol 2026-07-28 the question is a request sent in the middle of the call, which a stateless
    HTTP server has no channel for (nor does it keep the client's capabilities). Otherwise the client must
    have declared form elicitation. That rule is the SDK's own: a bare `elicitation: {}` predates
    elicitation modes and means form support.
    """
    version = ctx.protocol_version
    asks_in_result = version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION)
    if not asks_in_result and not ctx.session.can_send_request:
        return (
            f"this connection uses protocol {version}, where the server asks with a request to the client, "
            "which it cannot send over stateless HTTP; use protocol 2026-07-28, which asks in the call's result"
        )
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return "this client declared no form elicitation capability, so the server cannot ask"
    return None


class StartGate:
    """Decide before a start whether to ask the user, and after the response whether the start may run."""

    def __init__(
        self, get_service: Callable[[Context], WorkflowService], access: WorkflowAccess, redactor: Redactor
    ) -> None:
        self._get_service = get_service
        self._access = access
        self._redactor = redactor

    def needs_confirmation(self, workflow_id: object) -> CatalogEntry | None:
        """Return the catalog entry of `workflow_id` if a start of it needs the user's confirmation."""
        if not isinstance(workflow_id, str):
            return None
        entry = self._access.entry_for(workflow_id)
        return entry if entry is not None and entry.confirm else None

    async def precheck(
        self, ctx: Context, *, workflow_id: object, version: object, variables: object, data: object
    ) -> Elicit[StartConfirmation] | Precheck:
        """Check the start arguments, then return the question to ask, or a `Precheck` when there is none."""
        try:
            request = self._get_service(ctx).check_start(
                workflow_id=workflow_id, version=version, variables=variables, data=data
            )
        except InvalidInputError as exc:
            return Precheck(error=exc)
        entry = self.needs_confirmation(request.workflow_id)
        if entry is None:
            return Precheck()
        cannot_ask = why_cannot_ask(ctx)
        if cannot_ask is not None:
            return Precheck(cannot_ask=cannot_ask)
        # Masking runs regular expressions over up to 400 KB of variables, so it runs off the event loop.
        masked = await anyio.to_thread.run_sync(self._redactor.mask_variables, request.variables)
        return Elicit(confirmation_question(entry, request, masked.variables), StartConfirmation)

    def enforce(self, workflow_id: object, outcome: ConfirmationOutcome) -> None:
        """Raise unless the start may go ahead: it needs no confirmation, or the user confirmed it.

        Raises the argument error the precheck found, or `StartNotConfirmedError`.
        """
        answer = outcome.data if isinstance(outcome, AcceptedElicitation) else None
        if isinstance(answer, Precheck) and answer.error is not None:
            raise answer.error
        entry = self.needs_confirmation(workflow_id)
        if entry is None:
            return
        if isinstance(answer, Precheck):
            # The workflow needs confirmation, but no question was sent.
            reason = answer.cannot_ask or "the server did not ask"
            raise StartNotConfirmedError("confirmation_unavailable", _unavailable_message(entry, reason))
        if isinstance(outcome, CancelledElicitation):
            raise StartNotConfirmedError(
                "cancelled_by_user",
                f"The user cancelled the confirmation of workflow {entry.id} ({entry.name}). The workflow was not "
                "started. Ask the user whether to start it before calling again.",
            )
        if isinstance(answer, StartConfirmation) and answer.confirm:
            return
        # A decline, or an accepted form with the box left unticked.
        raise StartNotConfirmedError(
            "declined",
            f"The user declined to start workflow {entry.id} ({entry.name}). The workflow was not started. "
            "Do not start it again unless the user asks for it.",
        )


def _unavailable_message(entry: CatalogEntry, reason: str) -> str:
    return (
        f"Workflow {entry.id} ({entry.name}) needs the user's confirmation before it starts, but {reason}. "
        "The workflow was not started. Start it from a client that supports MCP elicitation, or ask the "
        "operator to change confirm in the catalog."
    )


def confirmation_question(entry: CatalogEntry, request: StartRequest, masked: Mapping[str, Any]) -> str:
    """Write the question shown to the user: the workflow, its version and the masked variables to be sent.

    The text depends only on the arguments. From protocol 2026-07-28 the SDK accepts a response only for
    the exact question it was given for, so the question must come out the same when the call is repeated.
    """
    lines = [
        f"Start the workflow {entry.name!r} ({entry.id}), version {request.version}?",
        "It runs as soon as it starts and may act on the outside world.",
    ]
    if masked:
        lines.append("Variables to send, with sensitive values masked:")
        lines.extend(f"  {name}: {_shown_value(value)}" for name, value in masked.items())
    else:
        lines.append("No variables are sent.")
    if request.data is not None:
        size = len(json.dumps(request.data, ensure_ascii=False).encode())
        lines.append(f"A data object of {size} bytes is sent too.")
    lines.append("Tick the box and accept to start it, or decline to leave it unstarted.")
    return "\n".join(lines)


def _shown_value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN_VALUE_CHARS else text[:MAX_SHOWN_VALUE_CHARS] + "…"


class StartConfirmer:
    """The resolver of start_workflow_session's `confirmation` parameter; the SDK passes it the arguments by name."""

    def __init__(self, gate: StartGate) -> None:
        self._gate = gate

    async def __call__(
        self, ctx: Context, workflow_id: Any, version: Any, variables: Any, data: Any
    ) -> Elicit[StartConfirmation] | Precheck:
        return await self._gate.precheck(ctx, workflow_id=workflow_id, version=version, variables=variables, data=data)


def confirmation_annotation(resolver: Callable[..., Any]) -> Any:
    """Return the annotation that makes the SDK fill a tool's `confirmation` parameter by running `resolver`.

    A tool function built inside another function cannot name its resolver in a string annotation, which
    the SDK evaluates in the module's namespace, so callers set it on `__annotations__` with this value.
    """
    return Annotated[ConfirmationOutcome, Resolve(resolver)]


def require_confirmation_resolver(tool: Tool) -> None:
    """Raise `RuntimeError` unless the SDK will fill the `confirmation` parameter of `tool` by running its resolver.

    The SDK silently ignores an annotation it cannot evaluate, and a start tool without its resolver
    would never ask for confirmation, so a wiring mistake stops the server at startup instead.
    """
    if "confirmation" not in tool.resolved_params:
        raise RuntimeError(f"tool {tool.name} has no resolver for its 'confirmation' parameter")
