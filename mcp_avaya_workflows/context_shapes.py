"""Resources describing the session context a workflow receives on each channel.

Avaya documents the voice and messaging shapes by example only and says the
examples do not list every field, so each schema allows additional properties.
"""

from __future__ import annotations

from typing import Any

URI_PREFIX = "infinity://session-context/"

_NOTE = (
    "Avaya documents this shape by example and states that the example does not list every field; "
    "expect more properties than the schema names."
)

_PART_DESCRIPTIONS = {
    "source": "Where the interaction came from, such as the caller's phone number.",
    "details": "Channel details of the interaction.",
    "routing": "Routing information used to reach this workflow.",
    "linkedIds": "Identifiers of related engagements and interactions.",
    "variables": "Workflow variables, readable as {{variables.name}}.",
}


def _parts_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        name: {"type": "object", "description": text, "additionalProperties": True}
        for name, text in _PART_DESCRIPTIONS.items()
    }
    properties["source"]["properties"] = {
        "phoneNumber": {"type": "string", "description": "E.164 number, for example +19089536000."},
        "phoneNumberFormatted": {"type": "object", "additionalProperties": True},
    }
    return {"type": "object", "properties": properties, "additionalProperties": True}


def _voice() -> dict[str, Any]:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Infinity voice session context",
        **_parts_schema(),
    }
    example = {
        "source": {"phoneNumber": "+19089536000", "phoneNumberFormatted": {}},
        "details": {},
        "routing": {},
        "linkedIds": {},
        "variables": {},
    }
    return {"channel": "voice", "note": _NOTE, "schema": schema, "example": example}


def _messaging() -> dict[str, Any]:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Infinity messaging session context",
        "type": "object",
        "description": "Messaging wraps the same parts as voice in a `data` object.",
        "properties": {"data": _parts_schema()},
        "additionalProperties": True,
    }
    example: dict[str, Any] = {"data": {"source": {}, "details": {}, "routing": {}, "linkedIds": {}, "variables": {}}}
    return {"channel": "messaging", "note": _NOTE, "schema": schema, "example": example}


CONTEXT_SHAPES: dict[str, dict[str, Any]] = {"voice": _voice(), "messaging": _messaging()}

DESCRIPTIONS = {
    "voice": "JSON Schema and example of the session context a workflow sees on a voice (phone) interaction.",
    "messaging": "JSON Schema and example of the session context a workflow sees on a messaging interaction.",
}
