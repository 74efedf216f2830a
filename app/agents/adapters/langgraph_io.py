"""What goes into a LangGraph graph and what it asks: the input model, the input state, and
an ``interrupt()`` value as a question for ``ctx.ask``."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import typing_extensions
from langchain_core.messages import HumanMessage
from langgraph.types import Interrupt
from pydantic import BaseModel, create_model

from app.agents.events import InputKind

MESSAGES = "messages"
_PROMPT_KEYS = ("prompt", "question", "message", "text", "description")
_QUALIFIERS = {
    typing.NotRequired,
    typing.Required,
    typing_extensions.NotRequired,
    typing_extensions.Required,
    typing_extensions.ReadOnly,
}
_KINDS: tuple[InputKind, ...] = ("text", "choice", "confirm")


def input_model_for(graph: Any) -> type[BaseModel] | None:
    """A pydantic model of the graph's input when it is more than a conversation: a state
    without ``messages``, or an ``input_schema`` the graph was given with fields beyond
    ``messages``. The service then validates an object input against it. None for a chat
    graph, whose input is text: a state with ``messages`` (and maybe fields its nodes fill
    in) used as its own input. TypeError when the schema cannot be validated (a field of a
    type that pydantic does not know)."""
    builder = getattr(graph, "builder", None)
    schema = getattr(builder, "input_schema", None)
    if not isinstance(schema, type):
        return None
    raw = typing.get_type_hints(schema, include_extras=True)
    hints = {name: _unqualified(hint) for name, hint in raw.items()}
    chat_state = MESSAGES in hints and schema is getattr(builder, "state_schema", None)
    if chat_state or set(hints) <= {MESSAGES}:
        return None
    if issubclass(schema, BaseModel):
        return schema
    required = _required_fields(schema, raw)
    fields: dict[str, Any] = {
        name: (hint, ...) if name in required else (hint | None, None)
        for name, hint in hints.items()
    }
    name = "".join(part.title() for part in str(graph.name).split() if part.isalnum()) or "Graph"
    try:
        model: type[BaseModel] = create_model(f"{name}Input", **fields)
        model.model_json_schema()
    except Exception as exc:  # pydantic raises several kinds for a type it cannot handle
        message = f"the graph's input schema {schema.__name__} cannot be validated: {exc}"
        raise TypeError(message) from None
    return model


def _unqualified(hint: Any) -> Any:
    """A TypedDict key's type without ``NotRequired[...]`` / ``Required[...]`` around it."""
    while typing.get_origin(hint) in _QUALIFIERS:
        hint = typing.get_args(hint)[0]
    return hint


def _required_fields(schema: type, raw: dict[str, Any]) -> set[str]:
    """TypedDict: its required keys (``NotRequired[...]`` read from the hints too: a module
    with ``from __future__ import annotations`` hides it from ``__required_keys__``);
    dataclass: fields without a default. ``messages`` is never required: an object input may
    leave the conversation as it is."""
    if dataclasses.is_dataclass(schema):
        required = {
            field.name
            for field in dataclasses.fields(schema)
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        }
    else:
        required = set(getattr(schema, "__required_keys__", ()))
        for name, hint in raw.items():
            origin = typing.get_origin(hint)
            if origin in (typing.NotRequired, typing_extensions.NotRequired):
                required.discard(name)
            elif origin in (typing.Required, typing_extensions.Required):
                required.add(name)
    return (required & set(raw)) - {MESSAGES}


def graph_input(value: Any) -> dict[str, Any]:
    """The update a run starts with: text as a user message appended to ``messages``; an input
    model instance as the fields the client gave (the others keep the thread's values)."""
    if isinstance(value, BaseModel):
        return {name: getattr(value, name) for name in value.model_fields_set}
    return {MESSAGES: [HumanMessage(content=str(value))]}


def question(interrupt: Interrupt) -> tuple[str, InputKind, list[str] | None]:
    """What ``interrupt(value)`` asks, as (prompt, kind, choices). A string is the prompt; a
    dict may say ``prompt`` (or question, message, text), ``kind`` and ``choices``; a
    ``response_schema`` of a boolean asks to confirm, of an enum to choose."""
    value, schema = interrupt.value, interrupt.response_schema
    prompt = value if isinstance(value, str) else None
    kind: InputKind = "text"
    choices: list[str] | None = None
    if isinstance(schema, dict):
        if schema.get("type") == "boolean":
            kind = "confirm"
        elif isinstance(schema.get("enum"), list):
            kind, choices = "choice", [str(item) for item in schema["enum"]]
    if isinstance(value, dict):
        prompt = next((value[key] for key in _PROMPT_KEYS if isinstance(value.get(key), str)), None)
        options = value.get("choices", value.get("options"))
        if isinstance(options, list) and options:
            kind, choices = "choice", [str(item) for item in options]
        if value.get("kind") in _KINDS:
            kind = value["kind"]
    if prompt is None:
        prompt = json.dumps(value, default=str)
    if kind != "choice" or not choices:  # a choice without choices is asked as text
        return prompt, "text" if kind == "choice" else kind, None
    return prompt, kind, choices
