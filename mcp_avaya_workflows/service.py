"""The two operations behind the MCP tools, as plain async functions.

The data path of every call: sanitizer, then the Infinity client (with its
OAuth token), then redaction of what comes back, then the result model.
Nothing here depends on MCP, so tests can drive it directly.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from pydantic import BaseModel, Field

from .client import InfinityClient
from .errors import NotFoundError, SessionNotFoundError
from .handles import HandleCodec, SessionRef
from .redaction import Redactor, mask_patterns, replace_text
from .sanitizer import Limits, check_handle, check_start_arguments

logger = logging.getLogger(__name__)


class StartedWorkflowSession(BaseModel):
    """Result of start_workflow_session."""

    session_id: str = Field(description="Handle for get_workflow_session_status; not an Avaya ID.")
    workflow_id: str = Field(description="The workflow that was started.")
    workflow_name: str | None = Field(description="The workflow's display name, when Infinity reports it.")
    status: str = Field(description="Session status; a new session is RUNNING.")
    is_running: bool = Field(description="True while the workflow executes.")
    terminal: bool = Field(description="True once the session has finished and its status will not change.")


class WorkflowSessionStatus(BaseModel):
    """Result of get_workflow_session_status."""

    session_id: str = Field(description="The handle that was queried.")
    status: str = Field(description="Infinity's status: RUNNING, COMPLETED, FAILED, or another value Infinity may add.")
    is_running: bool = Field(description="True while the workflow executes.")
    terminal: bool = Field(description="True once the session has finished; poll again only while false.")
    current_module: str | None = Field(description="The module being executed, or null once finished.")
    output_variables: dict[str, Any] = Field(
        description="Variables the workflow has set so far, with sensitive values masked."
    )
    masked_variables: list[str] = Field(
        description="Names (dotted for nested values) of the output variables whose values were masked."
    )


class WorkflowService:
    """Start and read workflow sessions on behalf of a principal."""

    def __init__(self, client: InfinityClient, handles: HandleCodec, redactor: Redactor, limits: Limits) -> None:
        self._client = client
        self._handles = handles
        self._redactor = redactor
        self._limits = limits

    async def start(
        self, principal: str, *, workflow_id: object, version: object, variables: object, data: object
    ) -> StartedWorkflowSession:
        """Sanitize the arguments, start the session upstream and return a sealed handle."""
        request = check_start_arguments(workflow_id, version, variables, data, self._limits)
        started = await self._client.start_session(request)
        handle = self._handles.seal(
            SessionRef(
                upstream_id=started.id,
                workflow_id=request.workflow_id,
                principal=principal,
                engagement_id=started.engagement_id,
            )
        )
        logger.info("workflow.started workflow_id=%s version=%s", request.workflow_id, request.version)
        name = self._clean_text(started.workflow_name, _avaya_ids(started.id, started.engagement_id))
        # Avaya runs a session as soon as it is created, and the start response has no status field.
        return StartedWorkflowSession(
            session_id=handle,
            workflow_id=request.workflow_id,
            workflow_name=name,
            status="RUNNING",
            is_running=True,
            terminal=False,
        )

    async def status(self, principal: str, *, session_id: object) -> WorkflowSessionStatus:
        """Open the handle, read the session upstream and return its redacted status."""
        handle = check_handle(session_id)
        ref = self._handles.open(handle, principal)
        try:
            upstream = await self._client.get_status(ref.upstream_id)
        except NotFoundError:
            # The handle was valid, but Infinity no longer has the session.
            raise SessionNotFoundError() from None
        # Avaya's rules for callers say to hide its session IDs, and a workflow could echo one.
        avaya_ids = _avaya_ids(ref.upstream_id, ref.engagement_id)
        outputs: Any = upstream.output_variables
        for avaya_id, label in avaya_ids:
            outputs = replace_text(outputs, avaya_id, label)
        # Masking runs regular expressions over up to 1 MiB of text, so it runs off the event loop.
        masked = await anyio.to_thread.run_sync(self._redactor.mask_variables, outputs)
        running = upstream.running
        status = upstream.status or ("RUNNING" if running else "UNKNOWN")
        return WorkflowSessionStatus(
            session_id=handle,
            status=self._clean_text(status, avaya_ids) or status,
            is_running=running,
            terminal=not running,
            current_module=self._clean_text(upstream.current_module, avaya_ids),
            output_variables=masked.variables,
            masked_variables=masked.masked_names,
        )

    def _clean_text(self, text: str | None, avaya_ids: list[tuple[str, str]]) -> str | None:
        """Redact a free-text field from Infinity: credentials, Avaya's IDs and personal data."""
        if text is None:
            return None
        for avaya_id, label in avaya_ids:
            text = replace_text(text, avaya_id, label)
        return mask_patterns(self._redactor.scrub_text(text))


def _avaya_ids(session_id: str, engagement_id: str | None) -> list[tuple[str, str]]:
    """Pair each Avaya ID of a session with the label that replaces it in text for the model."""
    pairs = [(session_id, "[session id]")]
    if engagement_id and len(engagement_id) >= 8:
        pairs.append((engagement_id, "[engagement id]"))
    return pairs
