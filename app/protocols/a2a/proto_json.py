"""protobuf's JSON form for the SDK's types, in one place: protobuf ships no type stubs (nor
does this project depend on types-protobuf), so the untyped import is confined here and
everything else sees typed functions."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

M = TypeVar("M")


def to_dict(message: Any) -> dict[str, Any]:
    """The message as A2A's JSON (camelCase names, as on the wire)."""
    result: dict[str, Any] = json_format.MessageToDict(message)
    return result


def to_json(message: Any) -> str:
    text: str = json_format.MessageToJson(message, indent=None)
    return text


def parse(text: str, into: M) -> M:
    """Fill ``into`` (a new message) from JSON; unknown fields are ignored."""
    json_format.Parse(text, into, ignore_unknown_fields=True)
    return into
