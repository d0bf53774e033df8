"""The exception tree of mcp-avaya-workflows.

    AvayaWorkflowsError
    ├── ConfigurationError          settings are missing or invalid
    ├── InvalidInputError           a tool argument failed the sanitizer
    ├── SessionNotFoundError        a handle is tampered, expired, foreign or unknown upstream
    └── UpstreamError               Infinity returned an error, or no response
        ├── AuthenticationError     the token endpoint rejected the credentials, or a 401 persisted
        ├── PermissionDeniedError   403: the client may not run this workflow
        ├── NotFoundError           404: no such workflow or version
        ├── RequestRejectedError    400 or 422: Infinity rejected the request as sent
        ├── RateLimitedError        429: the tenant's quota is used up
        │   └── ThrottledError      this server's own rate limit had no free slot before the deadline
        ├── UpstreamUnavailableError  5xx, timeout or connection failure
        │   └── TokenUnavailableError  no access token: the token endpoint failed or timed out
        ├── InvalidResponseError    the body does not match any documented shape
        └── StartOutcomeUnknownError  a start reached Infinity but its outcome is unknown

Every message is written for the model or the operator and is safe to show:
no exception here ever carries an access token, the client secret or a raw
upstream body. `UpstreamError` keeps the endpoint, status and upstream request
ID for the logs.
"""

from __future__ import annotations


class AvayaWorkflowsError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(AvayaWorkflowsError):
    """Settings are missing or invalid; `problems` lists each one with its fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"The server configuration is invalid:\n{lines}")


class InvalidInputError(AvayaWorkflowsError):
    """A tool argument failed a sanitizer rule."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        # Callers build `field` from names and ASCII-escaped keys, so it is printed as it is.
        super().__init__(f"Invalid argument '{field}': {problem}. {fix}")


class SessionNotFoundError(AvayaWorkflowsError):
    """No session matches the handle, for whatever reason.

    A tampered, expired, foreign and unknown handle all raise this same error
    with the same text, so a caller cannot probe which case applies.
    """

    def __init__(self) -> None:
        super().__init__(
            "Workflow session not found. Use a session_id returned by start_workflow_session "
            "in this conversation; handles expire and only work for the caller that started the session."
        )


class UpstreamError(AvayaWorkflowsError):
    """Infinity returned an error, or could not be reached."""

    public_message = (
        "The Avaya Infinity API returned an error. Try again later or ask the operator to check the server log."
    )

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        status: int | None = None,
        request_id: str | None = None,
        upstream_error: str | None = None,
        request_sent: bool = True,
    ) -> None:
        self.detail = detail
        self.endpoint = endpoint
        self.status = status
        self.request_id = request_id
        self.upstream_error = upstream_error
        # False only when the connection failed before any byte of the request was sent.
        self.request_sent = request_sent
        super().__init__(detail)

    def __str__(self) -> str:
        status = "no response" if self.status is None else f"HTTP {self.status}"
        return f"{self.detail} ({self.endpoint}, {status})"


class AuthenticationError(UpstreamError):
    public_message = (
        "The server could not authenticate to Avaya Infinity. The operator should check the client ID, "
        "client secret and token URL."
    )


class PermissionDeniedError(UpstreamError):
    public_message = (
        "Avaya Infinity refused access: this server's client is not allowed to run that workflow. "
        "Ask the operator to grant the client permission, or use another workflow."
    )


class NotFoundError(UpstreamError):
    public_message = (
        "Avaya Infinity has no such workflow or version. Check the workflow_id and version; "
        "'current' selects the latest published version."
    )


class RequestRejectedError(UpstreamError):
    public_message = (
        "Avaya Infinity rejected the request. For a start, check that the workflow is published, supports "
        "this channel and accepts these variables."
    )


class RateLimitedError(UpstreamError):
    public_message = "Avaya Infinity is rate limiting this tenant. Wait before calling again."

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        status: int | None = None,
        request_id: str | None = None,
        upstream_error: str | None = None,
        retry_after: float | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(
            detail,
            endpoint=endpoint,
            status=status,
            request_id=request_id,
            upstream_error=upstream_error,
            request_sent=request_sent,
        )
        self.retry_after = retry_after


class ThrottledError(RateLimitedError):
    public_message = (
        "This server paces its requests to stay within the Avaya Infinity tenant's quota, and no request slot "
        "is free before the call's deadline. Nothing was sent to Infinity, so call again later."
    )


class UpstreamUnavailableError(UpstreamError):
    public_message = "Avaya Infinity is unavailable or did not respond in time. Try again in a moment."


class TokenUnavailableError(UpstreamUnavailableError):
    public_message = (
        "The server could not get an access token from Avaya Infinity: the token endpoint failed or did not "
        "answer in time, so nothing was sent to Infinity. Try again in a minute. If it persists, the operator "
        "should check the token URL (AVAYA_WORKFLOWS_TOKEN_URL) and the tenant's status."
    )


class InvalidResponseError(UpstreamError):
    public_message = (
        "Avaya Infinity returned a response this server could not read. Ask the operator to check the server log."
    )


class StartOutcomeUnknownError(UpstreamError):
    public_message = (
        "The start request was sent to Avaya Infinity, but no usable response came back, so the workflow may "
        "or may not have started. Do not start it again. Ask the operator to check first: the server log line "
        "'infinity.start_outcome_unknown' has the workflow ID, the time and the upstream request ID, and the "
        "workflow's session list in Infinity shows whether a session began at that time."
    )
