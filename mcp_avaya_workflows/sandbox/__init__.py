"""An in-process emulator of Avaya Infinity's token endpoint and Workflow Sessions REST API.

It runs scripted workflows from `workflows.toml`, signs real RS256 tokens, logs every request and
can inject faults, from error responses to connection resets, so clients can be tested without an
Avaya tenant.
"""

from pathlib import Path

from .app import create_app
from .authority import (
    ALICE_CLIENT_ID,
    AUTHORITY_PREFIX,
    BOB_CLIENT_ID,
    DEMO_CLIENT_IDS,
    READ_SCOPE,
    START_SCOPE,
    SUPPORTED_SCOPES,
    ClientAuthority,
    RegisteredClient,
)
from .faults import Fault
from .runner import running_sandbox, serve_sandbox_forever
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordedRequest, SandboxState, Session
from .workflows import ModuleScript, SessionStatus, WorkflowFault, WorkflowScript, load_workflows

# The workflow catalog for the demo workflows, which `serve --sandbox` loads by default.
SANDBOX_CATALOG = Path(__file__).with_name("catalog.toml")

__all__ = [
    "ALICE_CLIENT_ID",
    "AUTHORITY_PREFIX",
    "BOB_CLIENT_ID",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEMO_CLIENT_IDS",
    "READ_SCOPE",
    "SANDBOX_CATALOG",
    "START_SCOPE",
    "SUPPORTED_SCOPES",
    "ClientAuthority",
    "Fault",
    "ModuleScript",
    "RecordedRequest",
    "RegisteredClient",
    "SandboxState",
    "Session",
    "SessionStatus",
    "WorkflowFault",
    "WorkflowScript",
    "create_app",
    "load_workflows",
    "running_sandbox",
    "serve_sandbox_forever",
]
