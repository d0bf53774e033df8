"""The Workflow Sessions endpoints: start a session and read its status."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..strict_json import exceeds_depth
from .injection import RequestFaults
from .paths import SESSIONS_PATH
from .recording import exchange_of
from .responses import ApiError
from .state import SandboxState, Session
from .tokens import InvalidTokenError
from .workflows import CURRENT_VERSION, ID_PATTERN, WorkflowScript

# Top-level fields of a start request that keep their own meaning. Avaya folds any other field into
# `variables`.
START_FIELDS = frozenset(
    {
        "workflowId",
        "version",
        "variables",
        "data",
        "commType",
        "input",
        "language",
        "engagementId",
        "interactionId",
        "source",
    }
)
_BEARER_CHALLENGE = 'Bearer realm="avaya"'
# NOTE: Avaya documents no limits for request bodies. These are the sandbox's own, chosen so that no
# valid start request comes near them, and so that deep or huge bodies get a 400 instead of a crash.
MAX_BODY_DEPTH = 64
MAX_BODY_INTEGER_DIGITS = 64


@dataclass(frozen=True)
class StartRequest:
    """A validated start request, with unknown top-level fields already moved into `variables`."""

    workflow_id: str
    version: str
    variables: dict[str, Any]
    data: dict[str, Any]
    engagement_id: str | None


@dataclass(frozen=True)
class InvalidBody:
    """A request body that is not valid JSON or breaks a limit, and why, worded to follow "the request body"."""

    reason: str


@dataclass(frozen=True)
class Caller:
    """The client behind a request's bearer token, or the reason the token was rejected."""

    client_id: str | None
    error: ApiError | None


class WorkflowEndpoints:
    """Handlers for the start and status endpoints of one sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """Return the Starlette routes, with status under two paths because Avaya's documents differ."""
        return [
            Route(SESSIONS_PATH, self.start, methods=["POST"]),
            Route(SESSIONS_PATH + "/{session_id}", self.status, methods=["GET"]),
            Route(SESSIONS_PATH + "/{session_id}/status", self.status, methods=["GET"]),
        ]

    async def start(self, request: Request) -> Response:
        """Start a session of a scripted workflow."""
        faults = RequestFaults(self.state, request, "start")
        interrupted = await faults.take_before_workflow()
        if interrupted is not None:
            return interrupted
        body = _parse_json(await request.body())
        exchange = exchange_of(request)
        exchange.body = None if isinstance(body, InvalidBody) else body
        named_workflow = body.get("workflowId") if isinstance(body, dict) else None
        interrupted = await faults.take(_as_str(named_workflow))
        if interrupted is not None:
            return interrupted
        caller = self._identify_caller(request)
        exchange.client_id = caller.client_id
        return await faults.respond(lambda: self._start_session(body, caller))

    def _start_session(self, body: Any, caller: Caller) -> Response:
        try:
            client_id = _require_client(caller)
            if isinstance(body, InvalidBody):
                raise ApiError(400, f"the request body {body.reason}")
            start_request = parse_start_request(body)
            script = self._resolve_workflow(start_request, client_id)
        except ApiError as exc:
            return exc.to_response()
        # NOTE: reusing the caller's engagementId is a guess, because Avaya's documents only show a
        # generated one in the response.
        session = self.state.start_session(
            script,
            start_request.version,
            start_request.variables,
            start_request.data,
            client_id,
            start_request.engagement_id or str(uuid.uuid4()),
        )
        return build_start_response(script, session)

    async def status(self, request: Request) -> Response:
        """Return the current status of a session."""
        session_id: str = request.path_params["session_id"]
        well_formed = ID_PATTERN.fullmatch(session_id) is not None
        session = self.state.find_session(session_id) if well_formed else None
        faults = RequestFaults(self.state, request, "status")
        interrupted = await faults.take(session.workflow_id if session else None)
        if interrupted is not None:
            return interrupted
        caller = self._identify_caller(request)
        exchange_of(request).client_id = caller.client_id
        return await faults.respond(lambda: self._report_status(session_id, session, caller))

    def _report_status(self, session_id: str, session: Session | None, caller: Caller) -> Response:
        try:
            client_id = _require_client(caller)
            session = self._require_session(session_id, session, client_id)
        except ApiError as exc:
            return exc.to_response()
        return JSONResponse(self.state.session_status(session).to_json(session.id))

    def _identify_caller(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if header is None:
            return Caller(None, _unauthorized("missing Authorization header; send 'Bearer <access token>'"))
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Caller(None, _unauthorized("the Authorization header must be 'Bearer <access token>'"))
        try:
            claims = self.state.tokens.verify(token.strip())
        except InvalidTokenError as exc:
            return Caller(None, _unauthorized(str(exc), invalid_token=True))
        return Caller(str(claims["azp"]), None)

    def _resolve_workflow(self, start_request: StartRequest, client_id: str) -> WorkflowScript:
        script = self.state.workflows.get(start_request.workflow_id)
        if script is None:
            raise ApiError(404, f"workflow {start_request.workflow_id!r} not found")
        if not script.admits(client_id):
            raise ApiError(403, f"client {client_id!r} is not allowed to start workflow {script.id!r}")
        if not script.has_version(start_request.version):
            available = ", ".join((CURRENT_VERSION, *script.versions))
            raise ApiError(
                404,
                f"version {start_request.version!r} of workflow {script.id!r} not found; "
                f"available versions: {available}",
            )
        return script

    def _require_session(self, session_id: str, session: Session | None, client_id: str) -> Session:
        if ID_PATTERN.fullmatch(session_id) is None:
            raise ApiError(400, f"malformed session id {session_id!r}; expected {ID_PATTERN.pattern}")
        if session is None:
            raise ApiError(404, f"workflow session {session_id!r} not found")
        if not self.state.workflows[session.workflow_id].admits(client_id):
            raise ApiError(403, f"client {client_id!r} is not allowed to read session {session_id!r}")
        return session


def parse_start_request(body: Any) -> StartRequest:
    """Validate a start request body, raising ApiError(400) that names the first invalid field."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    workflow_id = body.get("workflowId")
    if workflow_id is None:
        raise ApiError(400, "workflowId is required")
    if not isinstance(workflow_id, str):
        raise ApiError(400, f"workflowId must be a string, got {type(workflow_id).__name__}")
    if ID_PATTERN.fullmatch(workflow_id) is None:
        raise ApiError(400, f"malformed workflowId {workflow_id!r}; expected {ID_PATTERN.pattern}")
    version = body.get("version", CURRENT_VERSION)
    if not isinstance(version, str) or not version:
        raise ApiError(400, f"version must be a non-empty string, got {version!r}")
    # NOTE: Avaya does not document which value wins when a top-level field and `variables` share a
    # name. The sandbox keeps the one in `variables`, where the caller put it on purpose.
    variables = {**_unknown_fields(body), **_object_field(body, "variables")}
    engagement_id = body.get("engagementId")
    return StartRequest(
        workflow_id=workflow_id,
        version=version,
        variables=variables,
        data=_object_field(body, "data"),
        engagement_id=engagement_id if isinstance(engagement_id, str) and engagement_id else None,
    )


def build_start_response(script: WorkflowScript, session: Session) -> Response:
    """Build the start response in the workflow's `response_shape`: nested with 201 or flat with 200."""
    if script.omit_optional:
        fields: dict[str, Any] = {"id": session.id}
    else:
        fields = {
            "id": session.id,
            "engagementId": session.engagement_id,
            "workflowId": script.id,
            "workflowName": script.name,
        }
    if script.response_shape == "flat":
        fields.pop("engagementId", None)
        return JSONResponse(fields, status_code=200)
    return JSONResponse({"session": fields}, status_code=201)


def _object_field(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def _unknown_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in START_FIELDS}


def _parse_json(raw: bytes) -> Any:
    """Decode a request body, or return InvalidBody for text that two JSON parsers could read differently.

    Rejected besides malformed JSON: text that is not UTF-8, nesting deeper than MAX_BODY_DEPTH, a key
    repeated in one object, NaN and infinities (including overflowing numbers such as 1e400) and
    integers longer than MAX_BODY_INTEGER_DIGITS.
    """
    # Only the nesting scan is shared with the client. The checks below are the sandbox's own, and unlike
    # the client's they name the offending key or number, because the sandbox reports them to the caller.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidBody("is not UTF-8")
    try:
        if exceeds_depth(text, MAX_BODY_DEPTH):
            return InvalidBody(f"is nested deeper than {MAX_BODY_DEPTH} levels")
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_int=_parse_bounded_int,
            parse_float=_parse_finite_float,
        )
    except json.JSONDecodeError as exc:
        return InvalidBody(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:
        return InvalidBody(str(exc))


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"repeats the key {key[:64]!r} in one object")
        seen.add(key)
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"contains {name}, which JSON does not allow")


def _parse_bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_BODY_INTEGER_DIGITS:
        raise ValueError(f"contains an integer of more than {MAX_BODY_INTEGER_DIGITS} digits")
    return int(digits)


def _parse_finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"contains the number {literal[:32]}, which is too large for a 64-bit float")
    return value


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _require_client(caller: Caller) -> str:
    if caller.error is not None:
        raise caller.error
    assert caller.client_id is not None
    return caller.client_id


def _unauthorized(message: str, *, invalid_token: bool = False) -> ApiError:
    challenge = _BEARER_CHALLENGE + (', error="invalid_token"' if invalid_token else "")
    return ApiError(401, message, {"WWW-Authenticate": challenge})
