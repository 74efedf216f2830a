"""protobuf's JSON form for the SDK's types (a2a-sdk's types are protobuf messages), in one
place: the rest of the package sees plain typed functions."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def to_dict(message: Message) -> dict[str, Any]:
    """The message as A2A's JSON (camelCase names, as on the wire)."""
    return json_format.MessageToDict(message)


def to_json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None)


def parse(text: str, into: M) -> M:
    """Fill ``into`` (a new message) from JSON; unknown fields are ignored."""
    json_format.Parse(text, into, ignore_unknown_fields=True)
    return into
