"""The two operations behind the MCP tools, as plain async functions.

The data path of every call: sanitizer, then the workflow catalog, then the
Infinity client (with its OAuth token), then redaction and size limits on
what comes back, then the result model. Nothing here depends on MCP, so
tests can drive it directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, Field

from .audit import AuditRecord
from .catalog import WorkflowAccess
from .client import CallBudget, InfinityClient, SessionStatus
from .errors import NotFoundError, RateLimitedError, SessionNotFoundError, UpstreamUnavailableError
from .handles import HandleCodec, SessionRef
from .redaction import Redactor, auto_policy, replace_text
from .sanitizer import ID_PATTERN, Limits, StartRequest, check_handle, check_start_arguments, check_wait_seconds

TRUNCATION_MARK = "…[truncated]"

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
    dropped_variables: list[str] = Field(
        default_factory=list, description="Output variables the operator's catalog withholds from this client."
    )
    truncated: bool = Field(
        False, description="True when output was cut to the server's size limits; truncated_variables lists where."
    )
    truncated_variables: list[str] = Field(
        default_factory=list, description="Output variables shortened or left out because they were too large."
    )


# Receives (progress, total, message) for an MCP progress notification; the elapsed and total wait, in seconds.
ProgressReporter = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True)
class CallTiming:
    """Deadlines of a tool call and the pace of the status reads during a bounded wait, in seconds.

    A call returns within `max(call_timeout, wait_seconds + wait_grace)`. The first status read may use
    the whole `call_timeout`. Reads during a wait must finish within `wait_grace` of the wait's end. A later
    read that runs late or fails after its retries ends the wait, and the call returns the last status it read.
    """

    call_timeout: float = 30.0
    max_wait_seconds: float = 30.0
    poll_initial: float = 0.5
    poll_max: float = 5.0
    poll_growth: float = 1.6
    wait_grace: float = 2.0


@dataclass(frozen=True)
class OutputLimits:
    """Size limits on the workflow output returned to the model."""

    max_value_chars: int = 4096
    max_total_bytes: int = 64 * 1024


class WorkflowService:
    """Start and read workflow sessions on behalf of a principal."""

    def __init__(
        self,
        client: InfinityClient,
        handles: HandleCodec,
        redactor: Redactor,
        limits: Limits,
        access: WorkflowAccess,
        output_limits: OutputLimits = OutputLimits(),
        timing: CallTiming = CallTiming(),
    ) -> None:
        self._client = client
        self._handles = handles
        self._redactor = redactor
        self._limits = limits
        self._access = access
        self._output_limits = output_limits
        self._timing = timing

    @property
    def max_wait_seconds(self) -> float:
        """The largest `wait_seconds` the status operation accepts."""
        return self._timing.max_wait_seconds

    def check_start(self, *, workflow_id: object, version: object, variables: object, data: object) -> StartRequest:
        """Sanitize start arguments and check them against the catalog, without sending anything.

        Raises `InvalidInputError` exactly as `start` would for the same arguments.
        """
        request = check_start_arguments(workflow_id, version, variables, data, self._limits)
        return self._access.authorize(request, version_given=version is not None)

    async def start(
        self,
        principal: str,
        *,
        workflow_id: object,
        version: object,
        variables: object,
        data: object,
        audit: AuditRecord,
    ) -> StartedWorkflowSession:
        """Sanitize the arguments, check them against the catalog, start the session and return a sealed handle."""
        if isinstance(workflow_id, str) and ID_PATTERN.fullmatch(workflow_id):
            # Recorded before the other arguments are checked, so that a rejected start still names its workflow.
            audit.workflow_id = workflow_id
        request = self.check_start(workflow_id=workflow_id, version=version, variables=variables, data=data)
        budget = CallBudget.starting_now(principal, self._timing.call_timeout)
        try:
            started = await self._client.start_session(request, budget)
        except anyio.get_cancelled_exc_class():
            if budget.sent:
                # The caller gave up or the server is stopping, but Infinity may already have run the start.
                logger.error(
                    "infinity.start_outcome_unknown workflow_id=%s error=the call was cancelled while the start "
                    "request was in flight",
                    request.workflow_id,
                )
                audit.outcome_if_cancelled = "start_outcome_unknown"
            raise
        handle = self._handles.seal(
            SessionRef(
                upstream_id=started.id,
                workflow_id=request.workflow_id,
                principal=principal,
                engagement_id=started.engagement_id,
            )
        )
        audit.set_handle(handle)
        audit.status = "RUNNING"
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

    async def status(
        self,
        principal: str,
        *,
        session_id: object,
        wait_seconds: object = None,
        audit: AuditRecord,
        progress: ProgressReporter | None = None,
    ) -> WorkflowSessionStatus:
        """Open the handle, read the session upstream, optionally wait for it to end, and return its redacted status.

        With `wait_seconds`, reads repeat with a growing interval until the session ends or the wait is
        over, and each read is reported to `progress`. An expired wait returns the current status.
        """
        handle = check_handle(session_id)
        audit.set_handle(handle)
        ref = self._handles.open(handle, principal)
        audit.workflow_id = ref.workflow_id
        wait = check_wait_seconds(wait_seconds, self._timing.max_wait_seconds)
        try:
            upstream = await self._follow(ref, principal, wait, progress)
        except NotFoundError:
            # The handle was valid, but Infinity no longer has the session.
            raise SessionNotFoundError() from None
        # Avaya's rules for callers say to hide its session IDs, and a workflow could echo one.
        avaya_ids = _avaya_ids(ref.upstream_id, ref.engagement_id)
        outputs: Any = upstream.output_variables
        for avaya_id, label in avaya_ids:
            outputs = replace_text(outputs, avaya_id, label)
        entry = self._access.entry_for(ref.workflow_id)
        policy = entry.output_policy if entry is not None else auto_policy
        # Masking runs regular expressions over up to 1 MiB of text, so it runs off the event loop.
        masked = await anyio.to_thread.run_sync(self._redactor.mask_variables, outputs, policy)
        variables, truncated = cap_output(masked.variables, self._output_limits)
        running = upstream.running
        clean_status = self._status_label(upstream, avaya_ids)
        audit.status = clean_status[:40]
        audit.masked, audit.dropped, audit.truncated = (
            len(masked.masked_names),
            len(masked.dropped_names),
            len(truncated),
        )
        return WorkflowSessionStatus(
            session_id=handle,
            status=clean_status,
            is_running=running,
            terminal=not running,
            current_module=self._clean_text(upstream.current_module, avaya_ids),
            output_variables=variables,
            masked_variables=masked.masked_names,
            dropped_variables=masked.dropped_names,
            truncated=bool(truncated),
            truncated_variables=truncated,
        )

    async def _follow(
        self, ref: SessionRef, principal: str, wait: float, progress: ProgressReporter | None
    ) -> SessionStatus:
        """Read the session, then keep reading while it runs, until `wait` seconds have passed."""
        timing = self._timing
        started = anyio.current_time()
        upstream = await self._client.get_status(ref.upstream_id, CallBudget(principal, started + timing.call_timeout))
        if wait <= 0:
            return upstream

        wait_end = started + wait
        avaya_ids = _avaya_ids(ref.upstream_id, ref.engagement_id)
        await self._report(progress, upstream, anyio.current_time() - started, wait, avaya_ids)
        interval = timing.poll_initial
        reads = 1

        while upstream.running and anyio.current_time() < wait_end:
            await anyio.sleep(min(interval, wait_end - anyio.current_time()))
            try:
                latest = await self._client.get_status(
                    ref.upstream_id, CallBudget(principal, wait_end + timing.wait_grace)
                )
            except (UpstreamUnavailableError, RateLimitedError) as exc:
                # The wait promises the current status rather than an error, and the last read is still true.
                logger.warning("workflow.wait_read_failed reads=%d error=%s", reads, exc)
                break
            reads += 1
            # A new module means the workflow is moving, so the next read comes soon again.
            moved = latest.current_module != upstream.current_module
            interval = timing.poll_initial if moved else min(timing.poll_max, interval * timing.poll_growth)
            upstream = latest
            await self._report(progress, upstream, anyio.current_time() - started, wait, avaya_ids)

        logger.info(
            "workflow.wait_ended reads=%d elapsed_s=%.1f running=%s",
            reads,
            anyio.current_time() - started,
            upstream.running,
        )
        return upstream

    async def _report(
        self,
        progress: ProgressReporter | None,
        upstream: SessionStatus,
        elapsed: float,
        wait: float,
        avaya_ids: list[tuple[str, str]],
    ) -> None:
        if progress is None:
            return
        status = self._status_label(upstream, avaya_ids)
        module = self._clean_text(upstream.current_module, avaya_ids)
        where = f" in module {module}" if module else ""
        message = f"{status}{where}, {elapsed:.1f} s of {wait:g} s waited"
        try:
            await progress(round(elapsed, 3), wait, message)
        except Exception as exc:
            # A client that went away cannot take progress, but the wait itself still has a result to return.
            logger.debug("workflow.progress_failed error=%s", type(exc).__name__)

    def _status_label(self, upstream: SessionStatus, avaya_ids: list[tuple[str, str]]) -> str:
        """Return the session's status, redacted, or RUNNING or UNKNOWN when Infinity sent none."""
        status = upstream.status or ("RUNNING" if upstream.running else "UNKNOWN")
        return self._clean_text(status, avaya_ids) or "UNKNOWN"

    def _clean_text(self, text: str | None, avaya_ids: list[tuple[str, str]]) -> str | None:
        """Redact a short free-text field from Infinity: credentials, Avaya's IDs, personal data and excess length."""
        if text is None:
            return None
        for avaya_id, label in avaya_ids:
            text = replace_text(text, avaya_id, label)
        cleaned = self._redactor.mask_text(text)
        limit = min(self._output_limits.max_value_chars, MAX_LABEL_CHARS)
        return cleaned if len(cleaned) <= limit else cleaned[:limit] + TRUNCATION_MARK


# Status, module and workflow names are labels, so they are cut shorter than output values.
MAX_LABEL_CHARS = 256


def cap_output(variables: dict[str, Any], limits: OutputLimits) -> tuple[dict[str, Any], list[str]]:
    """Shorten long strings and leave out the variables past the total size limit; return the affected names."""
    truncated: list[str] = []
    capped: dict[str, Any] = {}
    budget = limits.max_total_bytes
    for name, value in variables.items():
        shortened = _shorten(name, value, limits.max_value_chars, truncated)
        size = len(json.dumps({name: shortened}, ensure_ascii=False).encode())
        if size > budget:
            truncated.append(name)
            # Every later variable is left out too, so the model can tell that the output is incomplete from there on.
            budget = 0
            continue
        budget -= size
        capped[name] = shortened
    return capped, list(dict.fromkeys(truncated))


def _shorten(path: str, value: Any, max_chars: int, truncated: list[str]) -> Any:
    if isinstance(value, str):
        if len(value) <= max_chars:
            return value
        truncated.append(path)
        return value[:max_chars] + TRUNCATION_MARK
    if isinstance(value, dict):
        return {key: _shorten(f"{path}.{key}", item, max_chars, truncated) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(f"{path}[{index}]", item, max_chars, truncated) for index, item in enumerate(value)]
    return value


def _avaya_ids(session_id: str, engagement_id: str | None) -> list[tuple[str, str]]:
    """Pair each Avaya ID of a session with the label that replaces it in text for the model."""
    pairs = [(session_id, "[session id]")]
    if engagement_id and len(engagement_id) >= 8:
        pairs.append((engagement_id, "[engagement id]"))
    return pairs
