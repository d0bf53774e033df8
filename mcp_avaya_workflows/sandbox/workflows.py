"""Scripted workflows for the sandbox: the TOML data model and the status a session reports over time."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .faults import DEFAULT_OVERSIZED_BYTES, Fault, FaultAction

# Well-formed workflow and session ids for the sandbox.
# NOTE: Avaya publishes no id grammar that this project has seen. The pattern is a guess that fits every id in
# its examples, and the 64-character cap is arbitrary.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

CURRENT_VERSION = "current"

_PLACEHOLDER = re.compile(r"\{\{\s*variables\.([A-Za-z0-9_.-]+)\s*\}\}")
_PACKAGED_FILE = "workflows.toml"


class ModuleScript(BaseModel):
    """One module of a scripted workflow: how long it runs and the output variables it sets when done."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1)
    seconds: float = Field(ge=0)
    outputs: dict[str, Any] = Field(default_factory=dict, alias="set")


class WorkflowFault(BaseModel):
    """A standing fault from a `[[workflows.faults]]` entry, applied to requests for the enclosing workflow.

    The fields are those of `Fault`, without `workflow_id`, which the workflow implies. Defaults differ
    where TOML needs it: `times` defaults to every matching request, and `status` to none, because TOML
    has no null to write it with.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    target: Literal["start", "status"]
    action: FaultAction = "respond"
    status: int | None = None
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    delay_seconds: float = 0.0
    times: int | None = None
    handle_first: bool = False
    size_bytes: int = DEFAULT_OVERSIZED_BYTES

    @model_validator(mode="after")
    def check_combination(self) -> WorkflowFault:
        """Reject combinations of fields that `Fault` rejects, with its message."""
        self.to_fault(None)
        return self

    def to_fault(self, workflow_id: str | None) -> Fault:
        """Build the Fault this entry describes for the workflow `workflow_id`."""
        return Fault(
            target=self.target,
            action=self.action,
            status=self.status,
            body=self.body,
            headers=dict(self.headers),
            delay_seconds=self.delay_seconds,
            times=self.times,
            handle_first=self.handle_first,
            size_bytes=self.size_bytes,
            workflow_id=workflow_id,
        )


class WorkflowScript(BaseModel):
    """A workflow the sandbox can run, as described by one `[[workflows]]` entry of the data file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str = Field(min_length=1)
    versions: tuple[str, ...] = ()
    response_shape: Literal["nested", "flat"] = "nested"
    omit_optional: bool = False
    allowed_clients: tuple[str, ...] | None = None
    running_status: str = Field(default="RUNNING", min_length=1)
    outcome: str = Field(default="COMPLETED", min_length=1)
    never_finishes: bool = False
    echo_data: bool = False
    modules: tuple[ModuleScript, ...] = Field(min_length=1)
    faults: tuple[WorkflowFault, ...] = ()

    @field_validator("id")
    @classmethod
    def check_id(cls, value: str) -> str:
        """Reject ids for which the start endpoint itself would return 400."""
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"workflow id {value!r} does not match {ID_PATTERN.pattern}")
        return value

    @model_validator(mode="after")
    def check_versions(self) -> WorkflowScript:
        """Reject a `current` entry in `versions`, because every workflow has that version implicitly."""
        if CURRENT_VERSION in self.versions:
            raise ValueError(f"workflow {self.id}: list only versions besides {CURRENT_VERSION!r}")
        return self

    def has_version(self, version: str) -> bool:
        """Tell whether a start request may name this version."""
        return version == CURRENT_VERSION or version in self.versions

    def admits(self, client_id: str | None) -> bool:
        """Tell whether the client may use this workflow, which is true for all clients without `allowed_clients`."""
        return self.allowed_clients is None or client_id in self.allowed_clients


class _WorkflowFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflows: list[WorkflowScript] = Field(default_factory=list)


@dataclass(frozen=True)
class SessionStatus:
    """The five fields of a status response, computed for one moment of a session."""

    is_running: bool
    status: str
    current_module: str | None
    output_variables: dict[str, Any]

    def to_json(self, session_id: str) -> dict[str, Any]:
        """Build the status body, with all five fields always present as Avaya sends them (`currentModule` null when done)."""
        return {
            "workflowSessionId": session_id,
            "isRunning": self.is_running,
            "status": self.status,
            "currentModule": self.current_module,
            "outputVariables": self.output_variables,
        }


def load_workflows(path: Path | None = None) -> dict[str, WorkflowScript]:
    """Load workflow scripts from a TOML file, by default the one shipped in this package, keyed by id.

    Raises ValueError when the file is not valid TOML, does not fit the model, or repeats an id.
    """
    if path is None:
        packaged = resources.files("mcp_avaya_workflows.sandbox").joinpath(_PACKAGED_FILE)
        text = packaged.read_text(encoding="utf-8")
        source = f"packaged {_PACKAGED_FILE}"
    else:
        text = path.read_text(encoding="utf-8")
        source = str(path)
    try:
        parsed = _WorkflowFile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"invalid workflow file {source}: {exc}") from exc
    return _index_by_id(parsed.workflows, source)


def _index_by_id(scripts: list[WorkflowScript], source: str) -> dict[str, WorkflowScript]:
    indexed: dict[str, WorkflowScript] = {}
    for script in scripts:
        if script.id in indexed:
            raise ValueError(f"invalid workflow file {source}: workflow id {script.id!r} appears twice")
        indexed[script.id] = script
    return indexed


def compute_status(
    script: WorkflowScript,
    variables: Mapping[str, Any],
    elapsed_seconds: float,
    *,
    data: Mapping[str, Any] | None = None,
) -> SessionStatus:
    """Compute the status of a session after `elapsed_seconds` of scripted time.

    Modules run back to back; a module's outputs appear once it has finished. A `never_finishes`
    workflow stays on its last module, so that module's outputs never appear. An `echo_data`
    workflow ends by copying the start request's `data` object into its outputs.
    """
    outputs: dict[str, Any] = {}
    finished_at = 0.0
    last_index = len(script.modules) - 1
    for index, module in enumerate(script.modules):
        finished_at += module.seconds
        stays_forever = script.never_finishes and index == last_index
        if stays_forever or elapsed_seconds < finished_at:
            return SessionStatus(True, script.running_status, module.id, outputs)
        outputs.update(render_outputs(module.outputs, variables))
    if script.echo_data and data:
        outputs.update(data)
    return SessionStatus(False, script.outcome, None, outputs)


def render_outputs(outputs: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """Fill `{{variables.NAME}}` placeholders in strings, also inside tables and arrays.

    A missing variable becomes an empty string and a non-string one becomes compact JSON.
    """
    return {key: _render_value(value, variables) for key, value in outputs.items()}


def _render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: _variable_text(variables, match.group(1)), value)
    if isinstance(value, Mapping):
        return render_outputs(value, variables)
    if isinstance(value, list):
        return [_render_value(item, variables) for item in value]
    return value


def _variable_text(variables: Mapping[str, Any], name: str) -> str:
    value = variables.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
