"""Sanitizer rules: allowlisted IDs and handles, version labels, flat variables, bounded data and clean text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_avaya_workflows.demo import EXAMPLE_VARIABLES
from mcp_avaya_workflows.errors import InvalidInputError
from mcp_avaya_workflows.sanitizer import (
    HANDLE_FIX,
    ID_FIX,
    MAX_SAFE_INTEGER,
    VERSION_FIX,
    Limits,
    StartRequest,
    check_data,
    check_handle,
    check_id,
    check_start_arguments,
    check_variables,
    check_version,
    clean_text,
)

LIMITS = Limits()

# Workflow IDs as printed in Avaya's Workflow Sessions API documentation, 26 and 27 characters long.
AVAYA_DOC_WORKFLOW_IDS = [
    "025d010819f98dbc75776be9666",
    "025d0111114ed33c55731a7cb0",
    "wf_025d010627e3314fa905c5484c",
]

# Characters that render as nothing or reorder text, all in Unicode category Cf, which clean_text removes.
INVISIBLE_CHARACTERS = [
    pytest.param("\u200b", id="zero-width-space"),
    pytest.param("\u200c", id="zero-width-non-joiner"),
    pytest.param("\u200d", id="zero-width-joiner"),
    pytest.param("\u2060", id="word-joiner"),
    pytest.param("\ufeff", id="byte-order-mark"),
    pytest.param("\u00ad", id="soft-hyphen"),
    pytest.param("\u200e", id="left-to-right-mark"),
    pytest.param("\u200f", id="right-to-left-mark"),
    pytest.param("\u061c", id="arabic-letter-mark"),
    pytest.param("\u202a", id="left-to-right-embedding"),
    pytest.param("\u202b", id="right-to-left-embedding"),
    pytest.param("\u202c", id="pop-directional-formatting"),
    pytest.param("\u202d", id="left-to-right-override"),
    pytest.param("\u202e", id="right-to-left-override"),
    pytest.param("\u2066", id="left-to-right-isolate"),
    pytest.param("\u2067", id="right-to-left-isolate"),
    pytest.param("\u2068", id="first-strong-isolate"),
    pytest.param("\u2069", id="pop-directional-isolate"),
    pytest.param("\U000e0041", id="tag-latin-capital-a"),
]


def assert_rejection(error: InvalidInputError, field: str) -> None:
    """Check that the error names exactly `field` and ends its message with a fix sentence."""
    message = str(error)
    assert error.field == field
    assert field in message
    assert error.fix.strip()
    assert error.fix[0].isupper()
    assert message.endswith(error.fix)


def nested_data(levels: int) -> dict[str, Any]:
    """Build `levels` nested objects, keyed l1, l2, ..., with a scalar in the innermost one."""
    tree: dict[str, Any] = {"leaf": 1}
    for level in range(levels - 1, 0, -1):
        tree = {f"l{level}": tree}
    return tree


# IDs


@pytest.mark.parametrize("workflow_id", AVAYA_DOC_WORKFLOW_IDS)
def test_id_accepts_avaya_doc_examples(workflow_id: str) -> None:
    assert check_id("workflow_id", workflow_id) == workflow_id


@pytest.mark.parametrize(
    "workflow_id",
    [
        pytest.param("a", id="one-char"),
        pytest.param("a" * 64, id="64-chars"),
        pytest.param("Flow_2-B", id="mixed-case-underscore-dash"),
    ],
)
def test_id_accepts_allowlisted_characters(workflow_id: str) -> None:
    assert check_id("workflow_id", workflow_id) == workflow_id


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("025d/../admin", id="slash"),
        pytest.param("025d%2F..%2Fadmin", id="percent-encoding"),
        pytest.param("025d\\admin", id="backslash"),
        pytest.param("..", id="dot-dot"),
        pytest.param("025d..0111", id="dot-dot-inside"),
        pytest.param("025d 0111", id="space"),
        pytest.param("025d\t0111", id="tab"),
        pytest.param("abc\n", id="trailing-newline"),
        pytest.param("abc\r\nX-Injected: 1", id="header-injection"),
        pytest.param("abc\x00", id="nul"),
        pytest.param("abc\x7f", id="delete"),
        pytest.param("025\u0663", id="arabic-indic-digit"),
        pytest.param("\uff57\uff46_025d", id="fullwidth-letters"),
        pytest.param("025d\u0430bc", id="cyrillic-a"),
        pytest.param("025d\u200b0111", id="zero-width-space"),
        pytest.param("025d\u202e0111", id="right-to-left-override"),
        pytest.param("025d\ufeff", id="byte-order-mark"),
        pytest.param("", id="empty"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param(25, id="int"),
        pytest.param(None, id="none"),
        pytest.param(b"025d0111", id="bytes"),
        pytest.param(["025d0111"], id="list"),
    ],
)
def test_id_rejects_outside_allowlist(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_id("workflow_id", value)

    assert_rejection(info.value, "workflow_id")
    assert info.value.fix == ID_FIX


def test_id_error_names_invisible_character() -> None:
    """An ID error describes an invisible character by code point instead of printing it raw."""
    with pytest.raises(InvalidInputError) as info:
        check_id("workflow_id", "025d\u202e0111")

    assert "U+202E" in str(info.value)
    assert "\u202e" not in str(info.value)


# Version labels


@pytest.mark.parametrize("label", ["current", "1", "2.1", "3.0.1", "v2-beta_1"])
def test_version_accepts_labels(label: str) -> None:
    assert check_version(label) == label


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("..", id="dot-dot"),
        pytest.param("a..b", id="dot-dot-inside"),
        pytest.param("1/2", id="slash"),
        pytest.param("-1", id="leading-dash"),
        pytest.param(".1", id="leading-dot"),
        pytest.param("1.", id="trailing-dot"),
        pytest.param("1\n", id="trailing-newline"),
        pytest.param("1 ", id="trailing-space"),
        pytest.param("%2e%2e", id="encoded-dots"),
        pytest.param("", id="empty"),
        pytest.param("1" * 33, id="33-chars"),
        pytest.param(2, id="int"),
        pytest.param(2.1, id="float"),
    ],
)
def test_version_rejects_invalid_labels(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_version(value)

    assert_rejection(info.value, "version")
    assert info.value.fix == VERSION_FIX


# Session handles


@pytest.mark.parametrize(
    "handle",
    [
        pytest.param("wfs_" + "a" * 16, id="shortest"),
        pytest.param("wfs_" + "A1_-" * 256, id="longest"),
    ],
)
def test_handle_accepts_prefixed_token(handle: str) -> None:
    assert check_handle(handle) == handle


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("gAAAAABlU_EAvS28TdaR3Gke", id="missing-prefix"),
        pytest.param("WFS_gAAAAABlU_EAvS28TdaR3Gke", id="uppercase-prefix"),
        pytest.param("wfs_" + "a" * 15, id="too-short"),
        pytest.param("wfs_" + "a" * 1025, id="too-long"),
        pytest.param("wfs_gAAAAABlU_EAvS28TdaR3Gke==", id="base64-padding"),
        pytest.param("wfs_gAAAAABlU/EAvS28TdaR3Gke", id="slash"),
        pytest.param("wfs_gAAAAABlU%2FEAvS28TdaR3Gke", id="percent-encoding"),
        pytest.param("wfs_gAAAAABlU_EAvS28TdaR3Gke\n", id="trailing-newline"),
        pytest.param("wfs_gAAAAABlU_EAvS28\u200bTdaR3Gke", id="zero-width-space"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(12345, id="int"),
    ],
)
def test_handle_rejects_malformed_values(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_handle(value)

    assert_rejection(info.value, "session_id")
    assert info.value.fix == HANDLE_FIX


# Variables


def test_variables_none_becomes_empty() -> None:
    assert check_variables(None) == {}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("80.00", id="string"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(None, id="null"),
        pytest.param(0, id="zero"),
        pytest.param(-42, id="negative-int"),
        pytest.param(MAX_SAFE_INTEGER, id="max-safe-integer"),
        pytest.param(-MAX_SAFE_INTEGER, id="min-safe-integer"),
        pytest.param(80.5, id="float"),
        pytest.param("x" * 4096, id="string-at-limit"),
    ],
)
def test_variables_accept_scalars(value: object) -> None:
    result = check_variables({"amount": value})

    assert result == {"amount": value}
    assert type(result["amount"]) is type(value)


def test_variables_accept_documented_example() -> None:
    variables = dict(EXAMPLE_VARIABLES)

    assert check_variables(variables) == variables


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"currency": "USD"}, id="nested-object"),
        pytest.param(["80.00"], id="list"),
        pytest.param(("80.00",), id="tuple"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinity"),
        pytest.param(float("-inf"), id="negative-infinity"),
        pytest.param(MAX_SAFE_INTEGER + 1, id="above-max-safe-integer"),
        pytest.param(-MAX_SAFE_INTEGER - 1, id="below-min-safe-integer"),
        pytest.param(10**30, id="huge-int"),
        pytest.param("x" * 4097, id="string-over-limit"),
        pytest.param(b"80.00", id="bytes"),
    ],
)
def test_variables_reject_value_by_name(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_variables({"page": "checkout", "amount": value})

    assert_rejection(info.value, "variables.amount")


@pytest.mark.parametrize(
    ("key", "field"),
    [
        pytest.param("1amount", "variables['1amount']", id="leading-digit"),
        pytest.param("order-id", "variables['order-id']", id="dash"),
        pytest.param("order id", "variables['order id']", id="space"),
        pytest.param("order.id", "variables['order.id']", id="dot"),
        pytest.param("{{amount}}", "variables['{{amount}}']", id="template-braces"),
        pytest.param("", "variables['']", id="empty"),
        pytest.param("a" * 65, f"variables['{'a' * 64}']", id="65-chars"),
    ],
)
def test_variables_reject_non_identifier_keys(key: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_variables({key: "x"})

    assert_rejection(info.value, field)


def test_variables_accept_64_char_key() -> None:
    key = "_" + "a" * 63

    assert check_variables({key: 1}) == {key: 1}


def test_variables_escape_bidi_key_in_message() -> None:
    """A rejected key is shown with escapes, so a bidi control cannot reorder the error text."""
    with pytest.raises(InvalidInputError) as info:
        check_variables({"amount\u202e": "1"})

    assert info.value.field == "variables['amount\\u202e']"
    assert "\u202e" not in str(info.value)


@pytest.mark.parametrize("key", ["__proto__", "constructor", "prototype"])
def test_variables_reject_prototype_keys(key: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_variables({"page": "checkout", key: {"isAdmin": True}})

    assert_rejection(info.value, f"variables.{key}")


def test_variables_reject_non_string_key() -> None:
    with pytest.raises(InvalidInputError) as info:
        check_variables({1: "x"})

    assert_rejection(info.value, "variables")


def test_variables_limit_key_count() -> None:
    at_limit = {f"v{index}": index for index in range(LIMITS.max_variables)}
    over_limit = {**at_limit, "one_more": 1}

    assert check_variables(at_limit) == at_limit
    with pytest.raises(InvalidInputError) as info:
        check_variables(over_limit)
    assert_rejection(info.value, "variables")


def test_variables_honour_custom_limits() -> None:
    limits = Limits(max_variables=2, max_string_length=5)

    assert check_variables({"a": "12345", "b": 2}, limits) == {"a": "12345", "b": 2}
    with pytest.raises(InvalidInputError) as too_many:
        check_variables({"a": 1, "b": 2, "c": 3}, limits)
    assert_rejection(too_many.value, "variables")
    with pytest.raises(InvalidInputError) as too_long:
        check_variables({"a": "123456"}, limits)
    assert_rejection(too_long.value, "variables.a")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([{"amount": 1}], id="list"),
        pytest.param("amount=1", id="string"),
        pytest.param(1, id="int"),
    ],
)
def test_variables_reject_non_object(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_variables(value)

    assert_rejection(info.value, "variables")


def test_variables_clean_string_values() -> None:
    result = check_variables({"note": "Cafe\u0301\u200b ok\u202e"})

    assert result == {"note": "Caf\u00e9 ok"}


# Data


def test_data_none_stays_none() -> None:
    assert check_data(None) is None


def test_data_accepts_nested_json() -> None:
    data = {
        "order": {"id": "TXN-2024-001234", "lines": [{"sku": "A-1", "qty": 2, "price": 19.99}], "gift": False},
        "notes": None,
    }

    assert check_data(data) == data


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([{"a": 1}], id="list"),
        pytest.param("{}", id="string"),
        pytest.param(0, id="int"),
    ],
)
def test_data_rejects_non_object(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_data(value)

    assert_rejection(info.value, "data")


def test_data_depth_limit_on_objects() -> None:
    at_limit = nested_data(LIMITS.max_data_depth)
    over_limit = nested_data(LIMITS.max_data_depth + 1)

    assert check_data(at_limit) == at_limit
    with pytest.raises(InvalidInputError) as info:
        check_data(over_limit)
    assert_rejection(info.value, "data.l1.l2.l3.l4.l5.l6.l7.l8")


def test_data_depth_limit_on_lists() -> None:
    at_limit: Any = 1
    for _ in range(LIMITS.max_data_depth - 1):
        at_limit = [at_limit]
    over_limit = [at_limit]

    assert check_data({"a": at_limit}) == {"a": at_limit}
    with pytest.raises(InvalidInputError) as info:
        check_data({"a": over_limit})
    assert_rejection(info.value, "data.a" + "[0]" * (LIMITS.max_data_depth - 1))


def test_data_limits_item_count() -> None:
    """Every object, list and scalar counts as one item, the top-level object included."""
    at_limit = {"items": [0] * (LIMITS.max_data_items - 2)}
    over_limit = {"items": [0] * (LIMITS.max_data_items - 1)}

    assert check_data(at_limit) == at_limit
    with pytest.raises(InvalidInputError) as info:
        check_data(over_limit)
    assert_rejection(info.value, "data")


def test_data_limits_serialized_size() -> None:
    data = {f"part{index}": "x" * 4000 for index in range(9)}

    assert len(json.dumps(data).encode()) > LIMITS.max_data_bytes
    with pytest.raises(InvalidInputError) as info:
        check_data(data)
    assert_rejection(info.value, "data")


def test_data_size_counts_keys() -> None:
    data = {f"{'k' * 120}{index:04d}": None for index in range(999)}

    assert len(json.dumps(data).encode()) > LIMITS.max_data_bytes
    with pytest.raises(InvalidInputError) as info:
        check_data(data)
    assert_rejection(info.value, "data")


def test_data_size_counts_utf8_bytes() -> None:
    data = {f"part{index}": "\u20ac" * 4000 for index in range(8)}

    assert len(json.dumps(data, ensure_ascii=False).encode()) > LIMITS.max_data_bytes
    with pytest.raises(InvalidInputError) as info:
        check_data(data)
    assert_rejection(info.value, "data")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"__proto__": {"isAdmin": True}}, "data.__proto__", id="top-level"),
        pytest.param({"order": {"constructor": {"prototype": 1}}}, "data.order.constructor", id="nested"),
        pytest.param({"order": {"lines": [{"prototype": 1}]}}, "data.order.lines[0].prototype", id="inside-list"),
        pytest.param(
            {"a": {"b": {"c": {"d": {"e": {"f": {"__proto__": 1}}}}}}}, "data.a.b.c.d.e.f.__proto__", id="deepest"
        ),
    ],
)
def test_data_rejects_prototype_keys_anywhere(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_data(data)

    assert_rejection(info.value, field)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param(float("nan"), "data.order.lines[1].price", id="nan"),
        pytest.param(float("inf"), "data.order.lines[1].price", id="infinity"),
        pytest.param(MAX_SAFE_INTEGER + 1, "data.order.lines[1].price", id="above-max-safe-integer"),
        pytest.param("x" * 4097, "data.order.lines[1].price", id="string-over-limit"),
        pytest.param(b"19.99", "data.order.lines[1].price", id="bytes"),
    ],
)
def test_data_rejects_bad_scalars_by_path(value: object, field: str) -> None:
    data = {"order": {"lines": [{"price": 1.0}, {"price": value}]}}

    with pytest.raises(InvalidInputError) as info:
        check_data(data)

    assert_rejection(info.value, field)


def test_data_rejects_non_string_key() -> None:
    with pytest.raises(InvalidInputError) as info:
        check_data({"order": {1: "x"}})

    assert_rejection(info.value, "data.order")


@pytest.mark.parametrize(
    ("key", "field"),
    [
        pytest.param("a\x00b", "data['a\\x00b']", id="nul"),
        pytest.param("a\u200bb", "data['a\\u200bb']", id="zero-width-space"),
        pytest.param("a\u202eb", "data['a\\u202eb']", id="right-to-left-override"),
        pytest.param("k" * 129, f"data['{'k' * 64}']", id="129-chars"),
    ],
)
def test_data_rejects_unsafe_keys(key: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_data({key: 1})

    assert info.value.field == field
    assert key not in str(info.value)


def test_data_cleans_nested_text() -> None:
    data = {"order": {"lines": [{"note": "Cafe\u0301\u200b\u202e\tdone\n"}]}}

    assert check_data(data) == {"order": {"lines": [{"note": "Caf\u00e9\tdone\n"}]}}


# Free text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("e\u0301", "\u00e9", id="e-combining-acute"),
        pytest.param("A\u030a", "\u00c5", id="a-combining-ring"),
        pytest.param("\u1100\u1161", "\uac00", id="hangul-jamo"),
        pytest.param("\u00e9", "\u00e9", id="already-composed"),
    ],
)
def test_text_normalized_to_nfc(text: str, expected: str) -> None:
    assert clean_text("note", text, LIMITS) == expected


@pytest.mark.parametrize("char", INVISIBLE_CHARACTERS)
def test_text_strips_invisible_character(char: str) -> None:
    assert clean_text("note", f"pay{char} now", LIMITS) == "pay now"


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("\x00", id="nul"),
        pytest.param("\x1b", id="escape"),
        pytest.param("\x7f", id="delete"),
        pytest.param("\x85", id="next-line"),
    ],
)
def test_text_strips_control_character(char: str) -> None:
    assert clean_text("note", f"pay{char} now", LIMITS) == "pay now"


def test_text_keeps_tab_and_newlines() -> None:
    text = "line 1\n\tline 2\r\nline 3"

    assert clean_text("note", text, LIMITS) == text


def test_text_keeps_visible_unicode() -> None:
    text = "Zahlung f\u00fcr \u6771\u4eac \u05e9\u05dc\u05d5\u05dd \U0001f600"

    assert clean_text("note", text, LIMITS) == text


def test_text_length_limit_names_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        clean_text("variables.note", "x" * (LIMITS.max_string_length + 1), LIMITS)

    assert_rejection(info.value, "variables.note")


def test_text_limit_applies_after_stripping() -> None:
    text = "x" * LIMITS.max_string_length + "\u200b" * 10

    assert clean_text("note", text, LIMITS) == "x" * LIMITS.max_string_length


# All arguments together


def test_start_arguments_default_to_current() -> None:
    request = check_start_arguments(AVAYA_DOC_WORKFLOW_IDS[0], None, None, None)

    assert request == StartRequest(workflow_id=AVAYA_DOC_WORKFLOW_IDS[0], version="current", variables={}, data=None)


def test_start_arguments_clean_every_part() -> None:
    request = check_start_arguments(
        AVAYA_DOC_WORKFLOW_IDS[2], "2.1", {"note": "e\u0301\u200b"}, {"customer": {"name": "Zo\u0308e"}}
    )

    assert request.workflow_id == AVAYA_DOC_WORKFLOW_IDS[2]
    assert request.version == "2.1"
    assert request.variables == {"note": "\u00e9"}
    assert request.data == {"customer": {"name": "Z\u00f6e"}}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param(("../admin", "current", None, None), "workflow_id", id="workflow-id"),
        pytest.param((AVAYA_DOC_WORKFLOW_IDS[0], "1/2", None, None), "version", id="version"),
        pytest.param((AVAYA_DOC_WORKFLOW_IDS[0], "1", {"n": float("nan")}, None), "variables.n", id="variables"),
        pytest.param((AVAYA_DOC_WORKFLOW_IDS[0], "1", None, {"__proto__": 1}), "data.__proto__", id="data"),
    ],
)
def test_start_arguments_name_failing_field(arguments: tuple[object, object, object, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_start_arguments(*arguments)

    assert_rejection(info.value, field)
