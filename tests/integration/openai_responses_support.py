"""Shared by the Responses tests: what the openai package says a Response and its stream
events are, applied to what the server sent."""

from __future__ import annotations

import json
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
# incomplete_details.reason values of ours (documented): the SDK types the field as a closed
# list, and parses any string it gets.
OUR_REASONS = frozenset({"input_required", "cancelled"})


def as_response(body: dict[str, Any]) -> Response:
    """``body`` held to the SDK's Response type (our reasons checked, then set aside)."""
    body = json.loads(json.dumps(body))
    details = body.get("incomplete_details")
    if details is not None and details.get("reason") in OUR_REASONS:
        assert body["status"] in ("incomplete", "cancelled"), body
        details["reason"] = None
    return Response.model_validate(body)


def sse_events(text: str) -> list[dict[str, Any]]:
    """The events of a Responses stream: each frame's ``event:`` is its data's ``type``."""
    events: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        event = json.loads(lines[1][len("data: ") :])
        assert event["type"] == lines[0][len("event: ") :]
        events.append(event)
    return events


def validated(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event is one of the SDK's stream event types (lifecycle responses included)."""
    for event in events:
        if "response" in event:
            as_response(event["response"])
            event = {**event, "response": as_response(event["response"]).model_dump()}
        STREAM_EVENT.validate_python(event)
    return events


def text_of(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )
