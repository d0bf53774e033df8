"""Check and normalize every tool argument before anything goes upstream.

The rules are allowlists with a full match: an ID is accepted only when every
character is one this module names, so encodings, traversal, header injection
and look-alike Unicode never reach a URL path or a request body. Free text is
normalized to NFC and stripped of invisible and bidirectional control
characters, which can hide instructions from a human reviewer.

Every failure raises `InvalidInputError` naming the field, the problem and the fix.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError

# Avaya's IDs are 26 or 27 lowercase alphanumerics, sometimes with a `wf_` prefix. Their
# spec's stricter `^025[a-z0-9]{23}$` rejects Avaya's own examples, so accept the safe charset.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ID_FIX = "Use the ID exactly as Infinity shows it: 1 to 64 ASCII letters, digits, '_' or '-'"

VERSION_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,30}[A-Za-z0-9])?")
VERSION_FIX = "Use 'current' for the latest published version, or a label such as '3' or '2.1'"

HANDLE_PATTERN = re.compile(r"wfs_[A-Za-z0-9_-]{16,1024}")
HANDLE_FIX = "Pass the session_id exactly as start_workflow_session returned it"

VARIABLE_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

# Avaya's workflow engine runs on Node.js, where these keys can rewrite an object's prototype.
PROTOTYPE_KEYS = frozenset({"__proto__", "constructor", "prototype"})

# JavaScript numbers lose precision above 2**53 - 1, so a larger integer would change meaning upstream.
MAX_SAFE_INTEGER = 2**53 - 1

# Bidirectional controls (Trojan Source, CVE-2021-42574) and other invisible characters.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class Limits:
    """Size limits for tool arguments; the defaults fit every documented Avaya example."""

    max_variables: int = 100
    max_string_length: int = 4096
    max_data_depth: int = 8
    max_data_bytes: int = 32 * 1024
    max_data_items: int = 1000


@dataclass(frozen=True)
class StartRequest:
    """Sanitized arguments of `start_workflow_session`."""

    workflow_id: str
    version: str
    variables: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    data: dict[str, Any] | None = None


def is_invisible(char: str) -> bool:
    """Tell whether `char` renders as nothing or reorders text: format (Cf) characters and bidi controls."""
    return char in _BIDI_CONTROLS or unicodedata.category(char) == "Cf"


def is_hidden(char: str) -> bool:
    """Tell whether `char` is invisible, a control character or a lone surrogate."""
    return is_invisible(char) or unicodedata.category(char) in ("Cc", "Cs")


_CONTROL_NAMES = {"\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\x00": "NULL", "\x7f": "DELETE"}


def describe_char(char: str) -> str:
    """Name a character for an error message without printing it raw."""
    if unicodedata.category(char) == "Cs":
        return f"U+{ord(char):04X} (lone surrogate)"
    name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "control character")
    return f"U+{ord(char):04X} ({name})"


def check_id(field_name: str, value: object, *, pattern: re.Pattern[str] = ID_PATTERN, fix: str = ID_FIX) -> str:
    """Return `value` if it is a string that fully matches `pattern`, else raise with the first bad character."""
    if not isinstance(value, str):
        raise InvalidInputError(field_name, f"must be a string, not {json_type(value)}", fix)
    if value == "":
        raise InvalidInputError(field_name, "is empty", fix)
    if pattern.fullmatch(value):
        return value
    raise InvalidInputError(field_name, _explain_id_mismatch(value, pattern), fix)


def _explain_id_mismatch(value: str, pattern: re.Pattern[str]) -> str:
    allowed, max_length = _CHARSETS.get(pattern, (None, None))
    # The length comes first, because the per-character scan below is slow on a string of megabytes.
    if max_length is not None and len(value) > max_length:
        return f"is {len(value)} characters long; the limit is {max_length}"
    if ".." in value:
        return "contains '..', which is not allowed"
    for position, char in enumerate(value):
        if char in "/\\%":
            return f"contains {char!r} at position {position}, which could change the API path"
        if char.isspace() or unicodedata.category(char) == "Cc":
            return f"contains whitespace or a control character {describe_char(char)} at position {position}"
        if is_invisible(char):
            return f"contains an invisible character {describe_char(char)} at position {position}"
        if not char.isascii():
            return f"contains the non-ASCII character {describe_char(char)} at position {position}"
        if allowed is not None and not allowed.fullmatch(char):
            return f"contains {char!r} at position {position}, which is not allowed"
    return "does not have the expected format"


# The characters each pattern allows, and its maximum length, for error messages.
_CHARSETS: dict[re.Pattern[str], tuple[re.Pattern[str], int]] = {
    ID_PATTERN: (re.compile(r"[A-Za-z0-9_-]"), 64),
    VERSION_PATTERN: (re.compile(r"[A-Za-z0-9._-]"), 32),
    HANDLE_PATTERN: (re.compile(r"[A-Za-z0-9_-]"), 4 + 1024),
}


def check_version(value: object) -> str:
    """Return a valid version label: `current` or a short dotted label."""
    label = check_id("version", value, pattern=VERSION_PATTERN, fix=VERSION_FIX)
    if ".." in label:
        raise InvalidInputError("version", "contains '..'", VERSION_FIX)
    return label


def check_handle(value: object) -> str:
    """Return a syntactically valid session handle; the handle codec checks the rest."""
    return check_id("session_id", value, pattern=HANDLE_PATTERN, fix=HANDLE_FIX)


def check_wait_seconds(value: object, cap: float) -> float:
    """Return the number of seconds to wait for a session to finish: 0 when absent, else 0 to `cap`."""
    fix = f"Pass a number of seconds from 0 to {cap:g}, or leave wait_seconds out to read the status at once"
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError("wait_seconds", f"must be a number, not {json_type(value)}", fix)
    # Integers compare exactly with floats, but math.isfinite would overflow on one of hundreds of digits.
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError("wait_seconds", "is NaN or infinite", fix)
    if value < 0:
        raise InvalidInputError("wait_seconds", "is negative", fix)
    if value > cap:
        raise InvalidInputError(
            "wait_seconds",
            f"is above this server's maximum of {cap:g} seconds",
            f"{fix}; while the session still runs, call again to keep waiting",
        )
    return float(value)


def clean_text(field_name: str, value: str, limits: Limits) -> str:
    """Normalize free text to NFC and strip invisible characters, control characters and lone surrogates.

    Tab and newlines are kept. Lone surrogates are stripped because they have no UTF-8 encoding.
    """
    # Reject far-oversized text before normalizing it, because NFC of megabytes takes seconds.
    if len(value) > 4 * limits.max_string_length:
        raise InvalidInputError(
            field_name,
            f"is {len(value)} characters long; the limit is {limits.max_string_length}",
            "Shorten the text, or pass a reference such as an ID instead of the whole document",
        )
    text = unicodedata.normalize("NFC", value)
    text = "".join(char for char in text if char in "\t\n\r" or not is_hidden(char))
    if len(text) > limits.max_string_length:
        raise InvalidInputError(
            field_name,
            f"is {len(text)} characters long; the limit is {limits.max_string_length}",
            "Shorten the text, or pass a reference such as an ID instead of the whole document",
        )
    return text


def check_number(field_name: str, value: int | float) -> int | float:
    """Reject NaN, infinities and integers that JavaScript cannot represent exactly."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(field_name, "is NaN or infinite, which JSON cannot represent", "Send a finite number")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise InvalidInputError(
            field_name,
            f"is an integer of {_describe_digits(value)}, beyond JavaScript's safe range of ±(2**53 - 1)",
            "Send large identifiers or amounts as strings",
        )
    return value


def _describe_digits(value: int) -> str:
    # str() raises ValueError above 4300 digits (sys.int_info.default_max_str_digits) and takes quadratic
    # time, so a long integer's length is estimated from its logarithm, which can be one digit off.
    if value.bit_length() <= 3000:
        return f"{len(str(abs(value)))} digits"
    return f"about {math.floor(math.log10(abs(value))) + 1} digits"


def check_key(field_name: str, key: object, *, pattern: re.Pattern[str] | None = None) -> str:
    """Check a mapping key: a string, not a prototype key, and matching `pattern` when given."""
    if not isinstance(key, str):
        raise InvalidInputError(field_name, "has a key that is not a string", "Use string keys only")
    if key in PROTOTYPE_KEYS:
        raise InvalidInputError(
            f"{field_name}.{key}",
            "is a reserved JavaScript property name that can alter objects in the workflow engine",
            "Rename the key",
        )
    if pattern is not None and not pattern.fullmatch(key):
        raise InvalidInputError(
            f"{field_name}[{key[:64]!a}]",
            "is not a valid variable name",
            "Use 1 to 64 ASCII letters, digits or '_', starting with a letter or '_', "
            "so the workflow can read it as {{variables.name}}",
        )
    if len(key) > 128:
        raise InvalidInputError(
            f"{field_name}[{key[:64]!a}]", f"is {len(key)} characters long; the limit is 128", "Use a shorter key"
        )
    hidden = next((char for char in key if is_hidden(char)), None)
    if hidden is not None:
        raise InvalidInputError(
            f"{field_name}[{key[:64]!a}]",
            f"contains the invisible character {describe_char(hidden)}",
            "Use a plain key",
        )
    return key


def check_variables(value: object, limits: Limits = Limits()) -> dict[str, str | int | float | bool | None]:
    """Check the flat `variables` map: identifier keys and scalar values within bounds."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            "variables", f"must be an object, not {json_type(value)}", 'Pass a flat object such as {"amount": "80.00"}'
        )
    if len(value) > limits.max_variables:
        raise InvalidInputError(
            "variables",
            f"has {len(value)} entries; the limit is {limits.max_variables}",
            "Send only the variables the workflow reads, and put bulk data in 'data'",
        )
    return {
        check_key("variables", key, pattern=VARIABLE_NAME_PATTERN): _check_scalar(f"variables.{key}", item, limits)
        for key, item in value.items()
    }


def _check_scalar(field_name: str, value: object, limits: Limits) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return check_number(field_name, value)
    if isinstance(value, str):
        return clean_text(field_name, value, limits)
    raise InvalidInputError(
        field_name,
        f"is {json_type(value)}, but variables must be strings, numbers, booleans or null",
        "Flatten the value into a string, or pass structured data in the 'data' argument",
    )


def check_data(value: object, limits: Limits = Limits()) -> dict[str, Any] | None:
    """Check the `data` object: bounded depth, item count and serialized size."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError("data", f"must be an object or null, not {json_type(value)}", "Pass a JSON object")
    budget = _Budget(limits.max_data_items)
    cleaned = _check_tree("data", value, 1, limits, budget)
    assert isinstance(cleaned, dict)
    if budget.bytes > limits.max_data_bytes:
        raise InvalidInputError(
            "data",
            f"is about {budget.bytes} bytes of JSON; the limit is {limits.max_data_bytes}",
            "Send only what the workflow needs, or a reference to the rest",
        )
    return cleaned


@dataclass
class _Budget:
    items_left: int
    bytes: int = 0


def _check_tree(path: str, value: object, depth: int, limits: Limits, budget: _Budget) -> Any:
    budget.items_left -= 1
    if budget.items_left < 0:
        raise InvalidInputError("data", f"has more than {limits.max_data_items} values", "Send less data")
    if isinstance(value, Mapping | list) and depth > limits.max_data_depth:
        raise InvalidInputError(path, f"is nested deeper than {limits.max_data_depth} levels", "Flatten the structure")
    if isinstance(value, Mapping):
        budget.bytes += 2
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            name = check_key(path, key)
            # Each member costs its quoted key, a colon and a comma in the JSON sent upstream.
            budget.bytes += len(name.encode()) + 4
            cleaned[name] = _check_tree(f"{path}.{name}", item, depth + 1, limits, budget)
        return cleaned
    if isinstance(value, list):
        budget.bytes += 2
        return [_check_tree(f"{path}[{index}]", item, depth + 1, limits, budget) for index, item in enumerate(value)]
    scalar = _check_scalar(path, value, limits)
    budget.bytes += len(json.dumps(scalar, ensure_ascii=False).encode()) + 1
    return scalar


def check_start_arguments(
    workflow_id: object, version: object, variables: object, data: object, limits: Limits = Limits()
) -> StartRequest:
    """Check every argument of `start_workflow_session` and return the cleaned request."""
    return StartRequest(
        workflow_id=check_id("workflow_id", workflow_id),
        version="current" if version is None else check_version(version),
        variables=check_variables(variables, limits),
        data=check_data(data, limits),
    )


def json_type(value: object) -> str:
    """Name the JSON type of `value` with its article, such as 'a string' or 'null', for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
