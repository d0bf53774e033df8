"""Injected faults: canned responses, delays, connection resets, truncated and oversized bodies, and token revocation.

A fault replaces or disturbs the sandbox's normal handling of the requests it matches. Faults come from two
places: the queue that tests fill through `SandboxState.add_fault` or `POST /_sandbox/faults`, and the
standing faults of the workflows' data file (`[[workflows.faults]]`). Queued faults match first.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

FaultTarget = Literal["token", "start", "status", "any"]
FAULT_TARGETS: tuple[str, ...] = get_args(FaultTarget)
FaultAction = Literal["respond", "reset_before_read", "reset_after_read", "truncate", "oversized", "revoke_token"]
FAULT_ACTIONS: tuple[str, ...] = get_args(FaultAction)
FaultSource = Literal["queue", "data_file"]

DEFAULT_OVERSIZED_BYTES = 2 * 1024 * 1024
# The sandbox builds an oversized body in memory, so this keeps one fault from exhausting it.
MAX_OVERSIZED_BYTES = 64 * 1024 * 1024

# Actions that never send a response of the fault's own, so a body or headers on them would be ignored.
_ACTIONS_WITHOUT_RESPONSE = ("reset_before_read", "reset_after_read", "revoke_token")
# Actions for which handling the request first would change nothing the client receives.
_ACTIONS_WITHOUT_HANDLE_FIRST = ("reset_before_read", "oversized", "revoke_token")


@dataclass(frozen=True)
class Fault:
    """A fault for the next `times` requests that match `target` (and `workflow_id`, if set).

    `action` chooses what happens:

    - `respond` sends the canned `status`, `body` and `headers`. A dict `body` is sent as JSON, a
      string body is sent raw (so it may be malformed JSON or an HTML page), and `None` sends an empty
      body. With `status=None` the request is only delayed by `delay_seconds` and then handled normally.
    - `reset_before_read` resets the TCP connection (RST) before the sandbox reads the request body or
      handles the request, so a start creates no session. A start fault that names a `workflow_id`
      needs the body's workflowId to match, so it resets after reading the body, but still before
      authenticating or creating a session.
    - `reset_after_read` handles the request normally, so a start creates its session, and then
      resets the connection instead of sending the response.
    - `truncate` sends the status line, the headers with the Content-Length of the whole body and the
      first half of the body, and then closes the connection.
    - `oversized` sends `status` (200 when `status` is None) and a valid JSON body of exactly
      `size_bytes` bytes.
    - `revoke_token` revokes the bearer token the request presents and then handles the request, which
      therefore gets the normal 401 `invalid_token` response.

    `handle_first`, for `respond` and `truncate`, handles the request normally before the fault
    replaces or truncates the response, the way a gateway can time out after Infinity did the work.
    `truncate` with `handle_first` cuts the real response instead of the canned one. `status` is
    ignored by the actions that send no canned response. The `delay_seconds` wait comes before the
    action. `times=None` applies the fault to every matching request, until `clear_faults` for a queued
    fault and for the sandbox's lifetime for a standing one.
    `target="any"` matches the token, start, status and JWKS endpoints but never the `/_sandbox`
    control endpoints.
    """

    target: FaultTarget = "any"
    status: int | None = 503
    body: dict[str, Any] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    times: int | None = 1
    workflow_id: str | None = None
    action: FaultAction = "respond"
    handle_first: bool = False
    size_bytes: int = DEFAULT_OVERSIZED_BYTES

    def __post_init__(self) -> None:
        if self.target not in FAULT_TARGETS:
            raise ValueError(f"fault target must be one of {', '.join(FAULT_TARGETS)}, got {self.target!r}")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"fault action must be one of {', '.join(FAULT_ACTIONS)}, got {self.action!r}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status from 100 to 599, got {self.status}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"fault times must be 1 or more, or None for every matching request, got {self.times}")
        if not math.isfinite(self.delay_seconds) or self.delay_seconds < 0:
            raise ValueError(f"fault delay_seconds must be a finite number of 0 or more, got {self.delay_seconds}")
        if not 1 <= self.size_bytes <= MAX_OVERSIZED_BYTES:
            raise ValueError(f"fault size_bytes must be from 1 to {MAX_OVERSIZED_BYTES}, got {self.size_bytes}")
        if self.workflow_id is not None and self.target == "token":
            raise ValueError(
                "fault workflow_id cannot be used with target 'token', because token requests name no workflow"
            )
        self._check_action()

    def _check_action(self) -> None:
        action = self.action
        if action == "respond" and self.status is None:
            if self.delay_seconds == 0:
                raise ValueError("a fault needs a status, a delay_seconds above 0, or both")
            if self.handle_first:
                raise ValueError("fault handle_first needs a status: a fault without one only delays the request")
        if self.handle_first and action in _ACTIONS_WITHOUT_HANDLE_FIRST:
            raise ValueError(f"fault handle_first cannot be used with action {action!r}")
        if action in _ACTIONS_WITHOUT_RESPONSE or (action == "truncate" and self.handle_first):
            if self.body is not None:
                raise ValueError(f"fault body cannot be used with action {action!r}, which sends no canned response")
            if self.headers:
                raise ValueError(f"fault headers cannot be used with action {action!r}, which sends no canned response")
        if action == "truncate" and not self.handle_first:
            if self.status is None:
                raise ValueError("fault status is required for action 'truncate' unless handle_first is true")
            if self.body is None or self.body == "":
                raise ValueError("fault body must not be empty for action 'truncate' unless handle_first is true")
        if action == "oversized" and self.body is not None:
            raise ValueError("fault body cannot be used with action 'oversized', which generates its own body")
        if action != "oversized" and self.size_bytes != DEFAULT_OVERSIZED_BYTES:
            raise ValueError(f"fault size_bytes applies only to action 'oversized', not {action!r}")
        if action == "revoke_token" and self.target not in ("start", "status"):
            raise ValueError(
                f"fault target must be 'start' or 'status' for action 'revoke_token', got {self.target!r}, "
                "because only those requests present a bearer token"
            )

    @property
    def label(self) -> str:
        """The name the request log gives this fault: its action, or "delay" for a fault that only delays."""
        if self.action == "respond" and self.status is None:
            return "delay"
        return self.action

    def matches(self, kind: str, workflow_id: str | None) -> bool:
        """Tell whether a request of this kind, for this workflow, falls under the fault."""
        return self.matches_kind(kind) and (self.workflow_id is None or self.workflow_id == workflow_id)

    def matches_kind(self, kind: str) -> bool:
        """Tell whether the fault's target covers requests of this kind, whatever their workflow."""
        return self.target in ("any", kind)


def fault_from_json(data: object) -> Fault:
    """Build a Fault from the JSON object posted to `/_sandbox/faults`, raising ValueError if it is invalid."""
    if not isinstance(data, dict):
        raise ValueError("the fault must be a JSON object")
    known = {item.name for item in fields(Fault)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fault fields: {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
    _check_types(data)
    return Fault(**data)


def _check_types(data: Mapping[str, Any]) -> None:
    # JSON gives no type guarantees, and Fault relies on these types for matching and for its response.
    checks: dict[str, tuple[type, ...]] = {
        "target": (str,),
        "status": (int, type(None)),
        "body": (dict, str, type(None)),
        "headers": (dict,),
        "delay_seconds": (int, float),
        "times": (int, type(None)),
        "workflow_id": (str, type(None)),
        "action": (str,),
        "size_bytes": (int,),
    }
    for name, allowed in checks.items():
        value = data.get(name)
        if name in data and (isinstance(value, bool) or not isinstance(value, allowed)):
            raise ValueError(f"fault field {name!r} has the wrong type: {value!r}")
    if "handle_first" in data and not isinstance(data["handle_first"], bool):
        raise ValueError(f"fault field 'handle_first' must be true or false, got {data['handle_first']!r}")
    headers = data.get("headers", {})
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in headers.items()):
        raise ValueError("fault field 'headers' must map header names to string values")


class WorkflowNeeded(enum.Enum):
    """The result of `FaultQueue.take_without_workflow` when only the request's workflow can decide the match."""

    WORKFLOW_NEEDED = "workflow needed"


WORKFLOW_NEEDED = WorkflowNeeded.WORKFLOW_NEEDED


@dataclass(frozen=True)
class PendingFault:
    """A fault waiting to be used, with the number of requests it still applies to (None: every one)."""

    fault: Fault
    remaining: int | None
    source: FaultSource


@dataclass
class _Entry:
    fault: Fault
    remaining: int | None


class FaultQueue:
    """Queued faults, in the order they were added, followed by the standing faults of the data file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_Entry] = []
        self._standing: list[_Entry] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault behind the ones already waiting."""
        with self._lock:
            self._queued.append(_Entry(fault, fault.times))

    def add_standing(self, fault: Fault) -> None:
        """Add a fault from the data file, which matches only after every queued fault and survives `clear`."""
        with self._lock:
            self._standing.append(_Entry(fault, fault.times))

    def clear(self) -> None:
        """Drop every queued fault, keeping the standing ones."""
        with self._lock:
            self._queued.clear()

    def take(self, kind: str, workflow_id: str | None) -> Fault | None:
        """Use up one application of the first matching fault and return that fault, or None when nothing matches."""
        with self._lock:
            for entries in (self._queued, self._standing):
                for entry in entries:
                    if entry.fault.matches(kind, workflow_id):
                        return self._use(entries, entry)
        return None

    def take_without_workflow(self, kind: str) -> Fault | WorkflowNeeded | None:
        """Take the first fault whose target covers `kind`, provided it matches requests for every workflow.

        Return WORKFLOW_NEEDED, and take nothing, when that first fault names a workflow: the caller must
        then learn the request's workflow and call `take`, so that the queue order still decides.
        """
        with self._lock:
            for entries in (self._queued, self._standing):
                for entry in entries:
                    if not entry.fault.matches_kind(kind):
                        continue
                    if entry.fault.workflow_id is not None:
                        return WORKFLOW_NEEDED
                    return self._use(entries, entry)
        return None

    def pending(self, source: FaultSource | None = None) -> list[PendingFault]:
        """Return the waiting faults of one source, or of both when `source` is None, in matching order."""
        with self._lock:
            queued = [PendingFault(entry.fault, entry.remaining, "queue") for entry in self._queued]
            standing = [PendingFault(entry.fault, entry.remaining, "data_file") for entry in self._standing]
        return [item for item in queued + standing if source is None or item.source == source]

    @staticmethod
    def _use(entries: list[_Entry], entry: _Entry) -> Fault:
        if entry.remaining is not None:
            entry.remaining -= 1
            if entry.remaining == 0:
                entries.remove(entry)
        return entry.fault
