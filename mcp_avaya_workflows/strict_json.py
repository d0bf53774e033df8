"""Strict JSON decoding for bodies from other systems.

Python's `json` module accepts NaN and Infinity, keeps the last of two equal keys, converts integers of
any length and recurses once per nesting level. Each of these lets a body mean different things to two
parsers, or cost far more than its size, so this decoder rejects them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any


def loads_strict(content: bytes, *, max_depth: int, max_integer_digits: int) -> Any:
    """Decode a JSON body, raising ValueError for anything two parsers could read differently or that costs too much.

    Rejected: text that is not UTF-8, nesting deeper than `max_depth`, a key repeated in one object,
    NaN and infinities (including overflowing numbers such as 1e400) and integers longer than
    `max_integer_digits`. A ValueError message names the rule and at most a position or one byte
    value, never the body's text.
    """
    # RFC 8259 section 8.1 requires UTF-8 between systems. Decoding first also keeps the nesting scan exact,
    # because a UTF-16 byte pair can contain the byte of a quote or a bracket.
    text = content.decode("utf-8-sig")
    if exceeds_depth(text, max_depth):
        raise ValueError(f"it is nested too deeply, beyond {max_depth} levels")
    return json.loads(
        text,
        object_pairs_hook=reject_duplicate_keys,
        parse_constant=reject_constant,
        parse_int=bounded_int_parser(max_integer_digits),
        parse_float=_parse_finite_float,
    )


def bounded_int_parser(max_digits: int) -> Callable[[str], int]:
    """Return a `parse_int` hook for `json.loads` that raises ValueError for integers of more than `max_digits`."""

    def parse(digits: str) -> int:
        if len(digits.lstrip("-")) > max_digits:
            raise ValueError(f"an integer has more than {max_digits} digits")
        return int(digits)

    return parse


# The characters that open or close a string, an array or an object.
_STRUCTURAL = re.compile(r'["\[\]{}]')
# The rest of a string after its opening quote. Possessive quantifiers keep a failed match linear in length.
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)


def exceeds_depth(text: str, max_depth: int) -> bool:
    """Tell whether brackets nest deeper than `max_depth`, in one linear pass without recursion.

    Brackets inside strings do not count. The scan stops at an unterminated string, because `json.loads`
    reads nothing after it as structure and rejects the body there.
    """
    depth = 0
    position = 0
    while (match := _STRUCTURAL.search(text, position)) is not None:
        char = match.group()
        position = match.end()
        if char == '"':
            string_end = _STRING_REST.match(text, position)
            if string_end is None:
                return False
            position = string_end.end()
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


# A top-level member: its key, then the colon, then the start of a number or a string value.
_MEMBER_VALUE = re.compile(r'\s*:\s*(-?[0-9]{1,20}(?![0-9.eE])|"(?:[^"\\]|\\.){0,256}")')


def top_level_id(text: str) -> int | str | None:
    """Return the JSON-RPC `id` of a message that may be too deep or ambiguous to parse, or None if it has none.

    Only members of the outermost object count, and an `id` that appears twice counts as none.
    """
    depth = 0
    position = 0
    found: list[int | str] = []
    while (match := _STRUCTURAL.search(text, position)) is not None:
        char = match.group()
        position = match.end()
        if char == '"':
            string_end = _STRING_REST.match(text, position)
            if string_end is None:
                break
            key = text[match.start() : string_end.end()]
            position = string_end.end()
            value = _MEMBER_VALUE.match(text, position) if depth == 1 and key == '"id"' else None
            if value is not None:
                found.append(json.loads(value.group(1)))
                position = value.end()
        elif char in "[{":
            depth += 1
        else:
            depth -= 1
    return found[0] if len(found) == 1 else None


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of two equal keys, but some parsers keep the first, so a repeated key is ambiguous.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("an object repeats a key")
    return obj


def reject_constant(name: str) -> Any:
    """Reject NaN, Infinity and -Infinity, which Python's json module accepts but JSON does not allow."""
    raise ValueError(f"{name} is not valid JSON")


def _parse_finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError("a number is too large for a 64-bit float")
    return value
