"""An in-process emulator of Avaya Infinity's token endpoint and Workflow Sessions REST API.

It runs scripted workflows from `workflows.toml`, signs real RS256 tokens, logs every request and
can inject faults, so clients can be tested without an Avaya tenant.
"""

from .app import create_app
from .faults import Fault
from .runner import running_sandbox, serve_sandbox_forever
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordedRequest, SandboxState, Session
from .workflows import ModuleScript, SessionStatus, WorkflowScript, load_workflows

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "Fault",
    "ModuleScript",
    "RecordedRequest",
    "SandboxState",
    "Session",
    "SessionStatus",
    "WorkflowScript",
    "create_app",
    "load_workflows",
    "running_sandbox",
    "serve_sandbox_forever",
]
