"""A client's A2A Message as what our runs take: a task's input, or the answer to its question.

Text parts are joined (a blank line between them). A data part is the input of an agent that
takes an object (an ``input_model``); for a text agent its JSON is the text. An answer is the
text, or a data part ``{"value": ...}`` (true/false for a confirm). Files (raw bytes or URLs)
are not taken: ContentTypeNotSupportedError, so nothing is silently dropped.
"""

from __future__ import annotations

import json
from typing import Any

from a2a.helpers import get_data_parts
from a2a.types import Message, Role
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError

from app.agents.protocol import Agent, GivenInput, input_model_of


def _parts(message: Message) -> tuple[list[str], list[Any]]:
    if message.role == Role.ROLE_AGENT:
        raise InvalidParamsError("A client's message has role ROLE_USER.")
    if not message.parts:
        raise InvalidParamsError("The message has no parts.")
    texts: list[str] = []
    data: list[Any] = []
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            data.extend(get_data_parts([part]))
        else:
            raise ContentTypeNotSupportedError(
                "This agent takes text and JSON data parts, not files."
            )
    return texts, data


def task_input(message: Message, agent: Agent) -> GivenInput:
    """The input of a new task: text, or an object for an agent with an input model."""
    texts, data = _parts(message)
    if data and input_model_of(agent) is not None:
        if len(data) != 1 or texts or not isinstance(data[0], dict):
            raise InvalidParamsError(
                f"Agent {agent.name!r} takes one data part holding a JSON object."
            )
        given: dict[str, Any] = data[0]
        return given
    pieces = texts + [json.dumps(item, separators=(",", ":")) for item in data]
    text = "\n\n".join(piece for piece in pieces if piece)
    if not text.strip():
        raise InvalidParamsError("The message has no text.")
    return text


def answer_value(message: Message) -> str | bool:
    """The answer to the task's question: the text, or a data part's ``value``."""
    texts, data = _parts(message)
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("value"), str | bool):
            value: str | bool = item["value"]
            return value
    text = "\n".join(texts).strip()
    if not text:
        raise InvalidParamsError(
            'Answer with a text part, or a data part {"value": ...} (true/false to confirm).'
        )
    return text
