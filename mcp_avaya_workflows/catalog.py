"""The workflow catalog: which workflows the agent may start, with what inputs, and what output it may see.

The operator lists each workflow in a TOML file. A start is then allowed only
for a listed workflow, with the declared input variables in their declared
types. Each output variable gets a policy: `reveal` shows it as the workflow
set it (credentials are still stripped), `mask` hides it behind a label,
`drop` removes it. Variables the policy does not name follow the entry's
`default_output`, which is `auto` (mask by name and by value pattern) unless
set otherwise.

Without a catalog the server starts nothing, unless the operator explicitly
allows every syntactically valid workflow ID.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigurationError, InvalidInputError
from .sanitizer import (
    ID_PATTERN,
    PROTOTYPE_KEYS,
    VARIABLE_NAME_PATTERN,
    VERSION_PATTERN,
    StartRequest,
    check_version,
    json_type,
)

# `regex`, `tomllib` and `difflib` are imported where they are used: a server without a catalog, or with
# no input patterns, never needs them, and importing them would delay every stdio server's first response.
if TYPE_CHECKING:
    import regex

logger = logging.getLogger(__name__)

OutputPolicy = Literal["reveal", "mask", "drop"]
DefaultOutputPolicy = Literal["auto", "reveal", "mask", "drop"]
InputType = Literal["string", "integer", "number", "boolean"]
Channel = Literal["voice", "messaging", "any"]

# A catalog pattern runs on every start, so its length is bounded like any other input rule.
MAX_PATTERN_LENGTH = 512


# A value that takes longer than this to match its pattern is rejected. Valid values of sensible patterns
# match in microseconds; only a pattern that backtracks badly, such as (a|aa)+b, comes near it.
PATTERN_TIMEOUT_SECONDS = 0.1


@functools.lru_cache(maxsize=256)
def compiled_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a catalog pattern with ASCII classes, so that `\\d` matches 0-9 and no other script's digits.

    The `regex` package is used instead of `re` because its matching takes a timeout: a catalog pattern
    that backtracks badly must not stall the event loop that serves every client.
    """
    import regex

    return regex.compile(pattern, regex.ASCII)


class InputVariable(BaseModel):
    """One input variable a catalog workflow accepts."""

    # Strict, so that `required = "false"` is an error instead of quietly becoming false.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: InputType = "string"
    required: bool = False
    description: str = ""
    pattern: str | None = Field(None, max_length=MAX_PATTERN_LENGTH)
    enum: list[str | int | float | bool] | None = Field(None, min_length=1)
    max_length: int | None = Field(None, ge=1, le=4096)

    @field_validator("pattern")
    @classmethod
    def _compile(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import regex

        try:
            compiled_pattern(value)
        except regex.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc}); escape special characters with \\") from None
        return value

    @model_validator(mode="after")
    def _string_rules_need_strings(self) -> InputVariable:
        if self.type != "string" and (self.pattern is not None or self.max_length is not None):
            raise ValueError(f"pattern and max_length apply only to type 'string', not {self.type!r}")
        for option in self.enum or ():
            if not _has_type(option, self.type):
                raise ValueError(f"enum value {option!r} is not of type {self.type!r}")
        return self

    def describe(self) -> str:
        """Say what a valid value looks like, for error messages."""
        rules = [f"a {self.type}"]
        if self.enum is not None:
            rules.append("one of " + ", ".join(repr(option) for option in self.enum))
        if self.pattern is not None:
            rules.append(f"matching {self.pattern}")
        if self.max_length is not None:
            rules.append(f"at most {self.max_length} characters")
        return " ".join(rules[:1]) + (f" ({'; '.join(rules[1:])})" if rules[1:] else "")


class CatalogEntry(BaseModel):
    """One workflow the agent may start."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    version: str = "current"
    versions: list[str] = Field(default_factory=list)
    channel: Channel = "any"
    confirm: bool = False
    accepts_data: bool = False
    inputs: dict[str, InputVariable] = Field(default_factory=dict)
    outputs: dict[str, OutputPolicy] = Field(default_factory=dict)
    default_output: DefaultOutputPolicy = "auto"

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"must be 1 to 64 ASCII letters, digits, '_' or '-', as Infinity shows it; got {value!a}")
        return value

    @field_validator("version", "versions")
    @classmethod
    def _check_versions(cls, value: str | list[str]) -> str | list[str]:
        for label in (value,) if isinstance(value, str) else value:
            if not VERSION_PATTERN.fullmatch(label) or ".." in label:
                raise ValueError(f"{label!a} is not a version label; use 'current' or a label such as '3' or '2.1'")
        return value

    @field_validator("inputs", "outputs")
    @classmethod
    def _check_input_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if name in PROTOTYPE_KEYS:
                raise ValueError(f"{name!r} is a reserved JavaScript property name; rename the variable")
            if not VARIABLE_NAME_PATTERN.fullmatch(name):
                raise ValueError(f"{name!a} is not a variable name; use ASCII letters, digits and '_'")
        return value

    def allowed_versions(self) -> tuple[str, ...]:
        """The default version first, then the other labels a caller may ask for."""
        return tuple(dict.fromkeys((self.version, *self.versions)))

    def output_policy(self, name: str) -> DefaultOutputPolicy:
        """Return the policy for a top-level output variable."""
        return self.outputs.get(name, self.default_output)

    def public_view(self) -> dict[str, Any]:
        """Return the entry as the catalog resource shows it to clients."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "channel": self.channel,
            "default_version": self.version,
            "versions": list(self.allowed_versions()),
            "confirm": self.confirm,
            "accepts_data": self.accepts_data,
            "inputs": {name: spec.model_dump(exclude_none=True) for name, spec in self.inputs.items()},
            "outputs": dict(self.outputs),
            "default_output": self.default_output,
        }


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflows: list[CatalogEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Catalog:
    """The workflows an operator allows, by ID."""

    entries: Mapping[str, CatalogEntry]
    source: str

    def find(self, workflow_id: str) -> CatalogEntry | None:
        return self.entries.get(workflow_id)


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file, raising `ConfigurationError` that names the file, entry and fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            [f"The workflow catalog {path} does not exist: fix AVAYA_WORKFLOWS_CATALOG or create the file."]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            [f"The workflow catalog {path} is not valid UTF-8 at byte {exc.start}: save it as UTF-8."]
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            [
                f"The workflow catalog {path} cannot be read ({exc.strerror}): point AVAYA_WORKFLOWS_CATALOG at a readable file."
            ]
        ) from None
    # Editors on Windows may start the file with a byte order mark, which TOML does not allow.
    return parse_catalog(text.removeprefix("\ufeff"), str(path))


def parse_catalog(text: str, source: str) -> Catalog:
    """Validate catalog TOML `text`; `source` names it in error messages."""
    import tomllib

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError([f"{source} is not valid TOML: {exc}. Fix the syntax at that line."]) from None
    try:
        parsed = _CatalogFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError([_describe(source, raw, error) for error in exc.errors()]) from None
    entries: dict[str, CatalogEntry] = {}
    problems: list[str] = []
    for index, entry in enumerate(parsed.workflows):
        if entry.id in entries:
            problems.append(
                f"{source}: workflows[{index}] repeats the id {entry.id!r}: "
                "list each workflow once, and put extra versions in its `versions`."
            )
        entries[entry.id] = entry
    if not entries:
        problems.append(f"{source} lists no workflows: add at least one [[workflows]] entry, or unset the catalog.")
    if problems:
        raise ConfigurationError(problems)
    return Catalog(entries=MappingProxyType(entries), source=source)


_ENTRY_FIELDS = sorted(CatalogEntry.model_fields)
_INPUT_FIELDS = sorted(InputVariable.model_fields)


def _describe(source: str, raw: dict[str, Any], error: Any) -> str:
    location = list(error["loc"])
    where = source
    in_entry = location[:1] == ["workflows"] and len(location) > 1 and isinstance(location[1], int)
    if in_entry:
        index = location[1]
        entries = raw.get("workflows")
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        name = entry.get("id") if isinstance(entry, dict) else None
        where = f"{source}: workflows[{index}]" + (f" (id {name!r})" if isinstance(name, str) else "")
        location = location[2:]
    field = ".".join(str(part) for part in location) or "entry"
    problem, fix = _explain(error, location, in_entry)
    return f"{where}: {field} {problem}. {fix}".rstrip()


# Problems named in TOML's terms rather than pydantic's, by pydantic error type.
_TYPE_PROBLEMS = {
    "bool_type": ("must be true or false", "Write it without quotes."),
    "int_type": ("must be a whole number", "Write it without quotes."),
    "float_type": ("must be a number", "Write it without quotes."),
    "string_type": ("must be a string", "Put it in quotes."),
    "list_type": ("must be an array", "Write it as [ ... ]."),
    "dict_type": ("must be a table", "Write it as a [section] or { ... }."),
    "model_type": ("must be a table", "Write it as a [section] or { ... }."),
}


def _explain(error: Any, location: list[Any], in_entry: bool) -> tuple[str, str]:
    kind = error["type"]
    if kind == "extra_forbidden":
        if not in_entry:
            known = ["workflows"]
        elif len(location) >= 3 and location[0] == "inputs":
            known = _INPUT_FIELDS
        else:
            known = _ENTRY_FIELDS
        import difflib

        close = difflib.get_close_matches(str(location[-1]), known, n=1)
        return "is not a known key", f"Did you mean {close[0]!r}?" if close else f"Valid keys are {', '.join(known)}."
    if kind == "missing":
        return "is missing", "Add it to the entry."
    if kind == "list_type" and location == ["workflows"]:
        return "must be an array of tables", "Write each entry under [[workflows]], with double brackets."
    if kind in _TYPE_PROBLEMS:
        return _TYPE_PROBLEMS[kind]
    message = _lower_first(str(error["msg"]).removeprefix("Value error, ")).replace("input should be", "must be")
    if kind == "literal_error":
        return message, "Use one of the values listed."
    if kind == "value_error":
        # The validators in this module put the fix into their own message.
        return message, ""
    return message, "Fix the value."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _has_type(value: object, kind: InputType) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    return isinstance(value, str)


class WorkflowAccess:
    """Decide which starts are allowed: by catalog, for any valid ID, or none at all."""

    def __init__(self, catalog: Catalog | None, *, allow_any: bool = False) -> None:
        self.catalog = catalog
        self.allow_any = allow_any and catalog is None

    @property
    def mode(self) -> Literal["catalog", "any", "none"]:
        if self.catalog is not None:
            return "catalog"
        return "any" if self.allow_any else "none"

    def entry_for(self, workflow_id: str) -> CatalogEntry | None:
        return self.catalog.find(workflow_id) if self.catalog is not None else None

    def authorize(self, request: StartRequest, *, version_given: bool) -> StartRequest:
        """Return `request` with the catalog's default version applied, or raise if it is not allowed."""
        if self.catalog is None:
            if self.allow_any:
                return request
            raise InvalidInputError(
                "workflow_id",
                "cannot be started, because this server has no workflow catalog and starts no workflows",
                "Ask the operator to list the workflow in the catalog file (AVAYA_WORKFLOWS_CATALOG)",
            )
        entry = self.catalog.find(request.workflow_id)
        if entry is None:
            raise InvalidInputError(
                "workflow_id",
                f"{request.workflow_id!r} is not in this server's workflow catalog",
                _catalog_hint(self.catalog, request.workflow_id),
            )
        version = request.version if version_given else entry.version
        allowed = entry.allowed_versions()
        if version_given and version not in allowed:
            raise InvalidInputError(
                "version",
                f"{version!r} is not a version the catalog allows for {entry.id}",
                f"Use one of {', '.join(repr(label) for label in allowed)}, or leave version out",
            )
        if request.data is not None and not entry.accepts_data:
            raise InvalidInputError(
                "data", f"is not accepted by workflow {entry.id}", "Leave data out; pass the declared variables only"
            )
        return StartRequest(
            workflow_id=request.workflow_id,
            version=check_version(version),
            variables=_check_inputs(entry, request.variables),
            data=request.data,
        )

    def public_view(self) -> dict[str, Any]:
        """Return what the catalog resource shows: the mode and, with a catalog, every entry."""
        view: dict[str, Any] = {"mode": self.mode}
        if self.catalog is not None:
            view["workflows"] = [entry.public_view() for entry in self.catalog.entries.values()]
        elif self.allow_any:
            view["note"] = "No catalog is loaded; the operator allows any syntactically valid workflow ID."
        else:
            view["note"] = "No catalog is loaded, so no workflow can be started."
        return view


def _catalog_hint(catalog: Catalog, workflow_id: str) -> str:
    import difflib

    close = difflib.get_close_matches(workflow_id, list(catalog.entries), n=1, cutoff=0.8)
    if close:
        return f"Did you mean {close[0]!r}? The resource infinity://workflows lists the allowed workflows"
    return "Pick a workflow from the resource infinity://workflows, or ask the operator to add this one"


def _check_inputs(
    entry: CatalogEntry, variables: Mapping[str, str | int | float | bool | None]
) -> dict[str, str | int | float | bool | None]:
    for name in variables:
        if name not in entry.inputs:
            declared = ", ".join(sorted(entry.inputs)) or "none"
            raise InvalidInputError(
                f"variables.{name}",
                f"is not an input of workflow {entry.id}",
                f"Send only its declared inputs ({declared})",
            )
    for name, spec in entry.inputs.items():
        if spec.required and variables.get(name) is None:
            raise InvalidInputError(
                f"variables.{name}",
                f"is required by workflow {entry.id}",
                f"Send {spec.describe()}" + (f": {spec.description}" if spec.description else ""),
            )
    return {name: _check_input(entry, name, value) for name, value in variables.items()}


def _check_input(entry: CatalogEntry, name: str, value: str | int | float | bool | None) -> Any:
    spec = entry.inputs[name]
    field = f"variables.{name}"
    if value is None:
        return None
    if not _has_type(value, spec.type):
        actual = json_type(value)
        raise InvalidInputError(
            field, f"is {actual}, but workflow {entry.id} expects {spec.type}", f"Send {spec.describe()}"
        )
    if spec.type == "integer" and isinstance(value, float):
        value = int(value)
    if spec.enum is not None and value not in spec.enum:
        raise InvalidInputError(field, "is not one of the allowed values", f"Send {spec.describe()}")
    if isinstance(value, str):
        if spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidInputError(
                field, f"is {len(value)} characters long; the limit is {spec.max_length}", f"Send {spec.describe()}"
            )
        if spec.pattern is not None and not _matches(spec.pattern, value, entry.id, name):
            raise InvalidInputError(field, "does not have the declared format", f"Send {spec.describe()}")
    return value


def _matches(pattern: str, value: str, workflow_id: str, name: str) -> bool:
    try:
        return compiled_pattern(pattern).fullmatch(value, timeout=PATTERN_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        # The value is rejected, and the operator learns that the pattern needs rewriting.
        logger.warning(
            "catalog.pattern_timeout workflow_id=%s variable=%s length=%d: simplify this pattern in the catalog",
            workflow_id,
            name,
            len(value),
        )
        return False
