"""Everything one sandbox instance remembers: clients, tokens, sessions, faults and the request log."""

from __future__ import annotations

import copy
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .authority import ClientAuthority
from .faults import Fault, FaultQueue, PendingFault, WorkflowNeeded
from .tokens import DEFAULT_SCOPE, IssuedToken, TokenIssuer
from .workflows import SessionStatus, WorkflowScript, compute_status, load_workflows

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a well-known credential for a local emulator
# Avaya's documents show both spellings of token_type, so clients must accept either.
TOKEN_TYPES = ("Bearer", "bearer")
# The oldest records are dropped beyond this, so a long-running standalone sandbox stays bounded.
REQUEST_LOG_LIMIT = 10_000
# Session ids in Avaya's examples, such as 028d01111220a063d64b039dad, are "028d" and 22 more characters.
SESSION_ID_PREFIX = "028d"

RequestKind = Literal["token", "start", "status", "jwks", "control", "other"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox received, faulted, failed and reset ones included.

    `body` is the parsed JSON of a start request and None for every other kind, so secrets and
    tokens never reach the log. `status` is 0 when no status line was sent, because the connection
    was reset first. `fault` is the `Fault.label` of the fault applied to the request, or None.
    """

    kind: RequestKind
    method: str
    path: str
    status: int
    client_id: str | None
    body: Any
    timestamp: float
    fault: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Build the entry served by `GET /_sandbox/requests`."""
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "client_id": self.client_id,
            "body": self.body,
            "timestamp": self.timestamp,
            "fault": self.fault,
        }


@dataclass(frozen=True)
class Session:
    """A started workflow session, whose status is derived from `started_at` whenever it is read."""

    id: str
    workflow_id: str
    version: str
    variables: dict[str, Any]
    data: dict[str, Any]
    client_id: str
    engagement_id: str
    started_at: float


class SandboxState:
    """One sandbox instance, shared by the ASGI app and by tests that inspect or steer it.

    `time_scale` multiplies every module's scripted duration, so 0.01 makes a 1 s module take 10 ms
    and 0 finishes every session at once. `clock` is a monotonic clock in seconds. The `faults` of
    each workflow script become standing faults, which match after every queued fault. `authority`
    issues tokens for MCP clients under `/mcp-auth`, apart from the Avaya realm. Without it, a
    `ClientAuthority` with random demo client secrets is created on first use.
    """

    def __init__(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        *,
        workflows: Mapping[str, WorkflowScript] | None = None,
        token_ttl_seconds: int = 900,
        time_scale: float = 1.0,
        token_type: str = "Bearer",  # noqa: S107 - the OAuth token_type, not a secret
        extra_clients: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        authority: ClientAuthority | None = None,
    ) -> None:
        if not math.isfinite(time_scale) or time_scale < 0:
            raise ValueError(f"time_scale must be a finite number of 0 or more, got {time_scale}")
        if token_type not in TOKEN_TYPES:
            raise ValueError(f"token_type must be one of {', '.join(TOKEN_TYPES)}, got {token_type!r}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.time_scale = time_scale
        self.token_type = token_type
        self.workflows: Mapping[str, WorkflowScript] = dict(load_workflows() if workflows is None else workflows)
        self.tokens = TokenIssuer(token_ttl_seconds)
        self._clients = _build_client_table(client_id, client_secret, extra_clients)
        self._clock = clock
        self._faults = FaultQueue()
        for script in self.workflows.values():
            for scripted_fault in script.faults:
                self._faults.add_standing(scripted_fault.to_fault(script.id))
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._authority = authority
        self._authority_lock = threading.Lock()

    @property
    def token_ttl_seconds(self) -> int:
        """Lifetime of issued access tokens, in seconds."""
        return self.tokens.ttl_seconds

    @property
    def authority(self) -> ClientAuthority:
        """The authorization server that issues tokens for MCP clients, separate from the Avaya realm."""
        # Created on first use, because generating its RSA key takes about 40 ms (measured with joserfc
        # 1.8 on two cores) and most sandboxes never serve an MCP client token.
        with self._authority_lock:
            if self._authority is None:
                self._authority = ClientAuthority()
            return self._authority

    # Clients and tokens

    def knows_client(self, client_id: str) -> bool:
        """Tell whether the client id is registered, whatever the secret."""
        return client_id in self._clients

    def check_client(self, client_id: str, client_secret: str) -> bool:
        """Tell whether the client id exists and the secret is its own."""
        expected = self._clients.get(client_id)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), client_secret.encode())

    def issue_token(
        self, client_id: str | None = None, scope: str = DEFAULT_SCOPE, issuer: str | None = None
    ) -> IssuedToken:
        """Sign an access token for a client, the default one unless named, without an HTTP round trip."""
        return self.tokens.issue(client_id or self.client_id, scope, issuer)

    def revoke_tokens(self) -> int:
        """Revoke every token issued so far, so their next use gets 401, and return how many were issued."""
        return self.tokens.revoke_all()

    def revoke_token(self, value: str) -> bool:
        """Revoke one token, so its next use gets 401, and tell whether it was a token this sandbox signed."""
        return self.tokens.revoke(value)

    # Faults

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault behind those already queued, which match requests first."""
        self._faults.add(fault)

    def clear_faults(self) -> None:
        """Drop every queued fault. The standing faults of the data file stay."""
        self._faults.clear()

    def take_fault(self, kind: str, workflow_id: str | None) -> Fault | None:
        """Use up one application of the first fault, queued or standing, that matches the request, and return it."""
        return self._faults.take(kind, workflow_id)

    def take_fault_without_workflow(self, kind: str) -> Fault | WorkflowNeeded | None:
        """Take a fault for a request whose workflow is not known yet, as in `FaultQueue.take_without_workflow`."""
        return self._faults.take_without_workflow(kind)

    @property
    def faults(self) -> list[tuple[Fault, int | None]]:
        """Queued faults with the number of requests each still applies to (None: every one)."""
        return [(item.fault, item.remaining) for item in self._faults.pending("queue")]

    @property
    def standing_faults(self) -> list[tuple[Fault, int | None]]:
        """Faults from the data file with the number of requests each still applies to (None: every one)."""
        return [(item.fault, item.remaining) for item in self._faults.pending("data_file")]

    def pending_faults(self) -> list[PendingFault]:
        """Queued faults, then standing ones, in the order they match requests."""
        return self._faults.pending()

    # Request log

    def record(self, entry: RecordedRequest) -> None:
        """Append a request to the log."""
        with self._lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, kind: RequestKind | None = None) -> int:
        """Count the logged requests of one kind, or of all kinds when `kind` is None."""
        with self._lock:
            return sum(1 for entry in self._requests if kind is None or entry.kind == kind)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._requests.clear()

    # Sessions

    def start_session(
        self,
        script: WorkflowScript,
        version: str,
        variables: Mapping[str, Any],
        data: Mapping[str, Any],
        client_id: str,
        engagement_id: str,
    ) -> Session:
        """Create a session of `script` that starts running now."""
        with self._lock:
            session_id = self._new_session_id()
            session = Session(
                id=session_id,
                workflow_id=script.id,
                version=version,
                variables=copy.deepcopy(dict(variables)),
                data=copy.deepcopy(dict(data)),
                client_id=client_id,
                engagement_id=engagement_id,
                started_at=self._clock(),
            )
            self._sessions[session_id] = session
        return session

    def sessions(self) -> list[Session]:
        """Return every session started so far, oldest first."""
        with self._lock:
            return list(self._sessions.values())

    def find_session(self, session_id: str) -> Session | None:
        """Return the session with this id, or None if this sandbox never started it."""
        with self._lock:
            return self._sessions.get(session_id)

    def session_status(self, session: Session) -> SessionStatus:
        """Compute the session's status from the time elapsed since it started, in scripted seconds."""
        real_elapsed = self._clock() - session.started_at
        scripted_elapsed = math.inf if self.time_scale == 0 else real_elapsed / self.time_scale
        return compute_status(
            self.workflows[session.workflow_id], session.variables, scripted_elapsed, data=session.data
        )

    def _new_session_id(self) -> str:
        while True:
            candidate = SESSION_ID_PREFIX + secrets.token_hex(11)
            if candidate not in self._sessions:
                return candidate


def _build_client_table(client_id: str, client_secret: str, extra_clients: Mapping[str, str] | None) -> dict[str, str]:
    if not client_id:
        raise ValueError("client_id must not be empty")
    clients = {client_id: client_secret}
    for extra_id, extra_secret in (extra_clients or {}).items():
        if extra_id in clients:
            raise ValueError(f"extra_clients repeats the client id {extra_id!r}")
        clients[extra_id] = extra_secret
    return clients
