"""The audit trail: one JSON line per tool call, to stderr or appended to a file.

A record names who called which tool, for which workflow and session, how it
ended, how long it took and how much was redacted. It never contains a
variable value, a variable name or the handle itself. The handle appears as a
short SHA-256 digest, which links a start to its status reads without letting the
reader of the trail open the session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import ConfigurationError
from .redaction import Redactor

logger = logging.getLogger(__name__)

OFF = "off"
STDERR = "stderr"


def handle_digest(handle: str) -> str:
    """Return a short, stable digest of a session handle for the audit trail."""
    return hashlib.sha256(handle.encode()).hexdigest()[:16]


@dataclass
class AuditRecord:
    """The outcome of one tool call, filled in by the tool layer as the call proceeds."""

    tool: str
    principal: str
    started: float = field(default_factory=time.perf_counter)
    workflow_id: str | None = None
    handle: str | None = None
    outcome: str = "ok"
    field: str | None = None
    status: str | None = None
    masked: int = 0
    dropped: int = 0
    truncated: int = 0
    # The outcome to record if the call is cancelled: a start cancelled after its request went out may have run.
    outcome_if_cancelled: str = "cancelled"

    def set_handle(self, handle: str) -> None:
        self.handle = handle_digest(handle)

    def reject(self, outcome: str, field_name: str | None = None) -> None:
        """Record a failed call, keeping only the top-level argument name of a bad field."""
        self.outcome = outcome
        if field_name:
            # A nested field names a key the caller chose, which may itself be sensitive.
            self.field = field_name.split(".", 1)[0].split("[", 1)[0][:32]

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": "tool_call",
            "principal": self.principal,
            "tool": self.tool,
            "workflow_id": self.workflow_id,
            "handle_digest": self.handle,
            "outcome": self.outcome,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 1),
            "redactions": {"masked": self.masked, "dropped": self.dropped, "truncated": self.truncated},
        }
        if self.field is not None:
            record["field"] = self.field
        if self.status is not None:
            record["status"] = self.status
        return record


class AuditLog:
    """Write audit records as JSON lines; a disabled log writes nothing."""

    def __init__(
        self, redactor: Redactor, stream: IO[str] | None = None, *, to_stderr: bool = False, owns_stream: bool = False
    ) -> None:
        self._redactor = redactor
        self._stream = stream
        self._to_stderr = to_stderr
        self._owns_stream = owns_stream
        self._lock = threading.Lock()

    @classmethod
    def from_setting(cls, setting: str, redactor: Redactor) -> AuditLog:
        """Open the audit log named by the `audit_log` setting: 'stderr', 'off' or a file path."""
        if setting.lower() == OFF:
            return cls(redactor)
        if setting.lower() == STDERR:
            return cls(redactor, to_stderr=True)
        path = Path(setting).expanduser()
        try:
            # Owner-only permissions: the trail names principals and workflows.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            stream = os.fdopen(descriptor, "a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise ConfigurationError(
                [
                    f"AVAYA_WORKFLOWS_AUDIT_LOG is invalid: {path} cannot be opened for appending "
                    f"({exc.strerror}); point it at a writable file, or set it to 'stderr' or 'off'."
                ]
            ) from None
        return cls(redactor, stream, owns_stream=True)

    @property
    def enabled(self) -> bool:
        return self._to_stderr or self._stream is not None

    def write(self, record: AuditRecord) -> None:
        """Append one record. An OSError or ValueError from the sink is logged and does not fail the tool call."""
        if not self.enabled:
            return
        # The record contains no values, but scrubbing the line keeps a credential out even if one slips into a field.
        line = self._redactor.scrub_text(json.dumps(record.to_json(), ensure_ascii=True, separators=(",", ":")))
        stream = sys.stderr if self._to_stderr else self._stream
        try:
            with self._lock:
                assert stream is not None
                stream.write(line + "\n")
                stream.flush()
        except (OSError, ValueError) as exc:
            logger.error("audit.write_failed error=%s", type(exc).__name__)

    def close(self) -> None:
        """Close a file this log opened itself; a stream passed in stays open for its owner."""
        if self._stream is not None and self._owns_stream:
            self._stream.close()
            self._stream = None
