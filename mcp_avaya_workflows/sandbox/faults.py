"""Injected faults: canned responses or delays that replace the sandbox's normal handling of a request."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

FaultTarget = Literal["token", "start", "status", "any"]
FAULT_TARGETS: tuple[str, ...] = get_args(FaultTarget)


@dataclass(frozen=True)
class Fault:
    """A canned response for the next `times` requests that match `target` (and `workflow_id`, if set).

    `status=None` only delays the request by `delay_seconds` and then handles it normally. A dict
    `body` is sent as JSON, a string body is sent raw (so it may be malformed JSON or an HTML page),
    and `None` sends an empty body. `target="any"` matches the token, start, status and JWKS
    endpoints but never the `/_sandbox` control endpoints.
    """

    target: FaultTarget = "any"
    status: int | None = 503
    body: dict[str, Any] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    times: int = 1
    workflow_id: str | None = None

    def __post_init__(self) -> None:
        if self.target not in FAULT_TARGETS:
            raise ValueError(f"fault target must be one of {', '.join(FAULT_TARGETS)}, got {self.target!r}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status from 100 to 599, got {self.status}")
        if self.times < 1:
            raise ValueError(f"fault times must be 1 or more, got {self.times}")
        if self.delay_seconds < 0:
            raise ValueError(f"fault delay_seconds must be 0 or more, got {self.delay_seconds}")
        if self.status is None and self.delay_seconds == 0:
            raise ValueError("a fault needs a status, a delay_seconds above 0, or both")

    def matches(self, kind: str, workflow_id: str | None) -> bool:
        """Tell whether a request of this kind, for this workflow, falls under the fault."""
        if self.target != "any" and self.target != kind:
            return False
        return self.workflow_id is None or self.workflow_id == workflow_id


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
        "times": (int,),
        "workflow_id": (str, type(None)),
    }
    for name, allowed in checks.items():
        value = data.get(name)
        if name in data and (isinstance(value, bool) or not isinstance(value, allowed)):
            raise ValueError(f"fault field {name!r} has the wrong type: {value!r}")
    headers = data.get("headers", {})
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in headers.items()):
        raise ValueError("fault field 'headers' must map header names to string values")


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int


class FaultQueue:
    """Faults waiting to be used, in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_QueuedFault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault behind the ones already waiting."""
        with self._lock:
            self._entries.append(_QueuedFault(fault, fault.times))

    def clear(self) -> None:
        """Drop every waiting fault."""
        with self._lock:
            self._entries.clear()

    def take(self, kind: str, workflow_id: str | None) -> Fault | None:
        """Use up one response of the first matching fault and return that fault, or None when nothing matches."""
        with self._lock:
            for entry in self._entries:
                if entry.fault.matches(kind, workflow_id):
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._entries.remove(entry)
                    return entry.fault
        return None

    def pending(self) -> list[tuple[Fault, int]]:
        """Return the waiting faults with the number of responses each has left."""
        with self._lock:
            return [(entry.fault, entry.remaining) for entry in self._entries]
