"""The sandbox's ASGI application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from .auth_routes import RealmEndpoints
from .authority_routes import AuthorityEndpoints
from .control_routes import ControlEndpoints
from .recording import RequestRecorder
from .state import SandboxState
from .workflow_routes import WorkflowEndpoints


def create_app(state: SandboxState) -> Starlette:
    """Build an ASGI app that emulates Avaya Infinity's token and Workflow Sessions endpoints for `state`.

    The app also serves the authorization server that issues tokens for MCP clients, under `/mcp-auth`.
    """
    routes = [
        *RealmEndpoints(state).routes(),
        *WorkflowEndpoints(state).routes(),
        *ControlEndpoints(state).routes(),
        *AuthorityEndpoints(state).routes(),
    ]
    return Starlette(routes=routes, middleware=[Middleware(RequestRecorder, state=state)])
