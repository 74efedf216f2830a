"""The Agent protocol: what a team implements to serve its agent, and its input: text, or an
object validated against the agent's ``input_model``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from app.core.errors import Unprocessable

if TYPE_CHECKING:
    from app.agents.context import RunContext
    from app.agents.events import Event

# An agent's name is a URL path segment and a session field; the API schemas use this too.
AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

DEFAULT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "minLength": 1}},
    "required": ["input"],
}

# What a client sends as ``input``: text, or a JSON object (for an agent with an input model).
GivenInput = str | dict[str, Any]
# What an agent's ``run`` receives: the text, or an instance of its ``input_model``.
AgentInput = str | BaseModel


class AgentCapabilities(BaseModel):
    streaming: bool = True
    human_input: bool = False
    tools: bool = False


@runtime_checkable
class Agent(Protocol):
    """What the runtime serves. An agent may also have ``input_model`` (a pydantic model
    class, read with ``getattr(agent, "input_model", None)``): its input is then validated
    against it, ``run`` receives the model instance, and its ``input_schema`` is that
    model's JSON schema (``input_schema_for``). Without one, ``run`` receives the text."""

    name: str
    description: str
    input_schema: dict[str, Any]
    capabilities: AgentCapabilities

    def run(self, input: Any, ctx: RunContext) -> AsyncIterator[Event]:
        """Yield events. Text goes out as TokenEvent deltas; the run's output is the text of
        the last MessageEvent(role="assistant") or, without one, the joined tokens."""
        ...


def input_model_of(agent: Agent) -> type[BaseModel] | None:
    model = getattr(agent, "input_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


@lru_cache(maxsize=256)
def input_schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The run body's schema for an agent with an input model: ``input`` is the model's JSON
    schema with its ``$defs`` written out in place, so the schema is whole where it stands.
    A model that contains itself cannot be written out: those definitions stay, moved to the
    top, where their ``#/$defs/...`` references resolve."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})
    kept: set[str] = set()  # the recursive definitions, found while inlining
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {"input": _inline(schema, defs, frozenset(), kept)},
        "required": ["input"],
    }
    written: dict[str, Any] = {}
    while pending := sorted(kept - written.keys()):
        written[pending[0]] = _inline(defs[pending[0]], defs, frozenset(pending[:1]), kept)
    if written:
        wrapper["$defs"] = written
    return wrapper


# Keywords whose values are data, not schemas: a "$ref" key in them is not a reference; and
# keywords whose values map names (of properties) to schemas.
_DATA_KEYWORDS = frozenset({"default", "examples", "const", "enum"})
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "dependentSchemas"})


def _inline(node: Any, defs: dict[str, Any], seen: frozenset[str], kept: set[str]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, seen, kept) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: _inline(item, defs, seen, kept) for name, item in value.items()}
        elif key != "$ref":
            out[key] = _inline(value, defs, seen, kept)
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return out
    name = ref.removeprefix("#/$defs/")
    if name in seen:  # inside itself: a reference to the definition kept at the top
        kept.add(name)
        return {"$ref": ref, **out}
    # Siblings of the reference (a field's description) win over the definition's own.
    return {**_inline(defs[name], defs, seen | {name}, kept), **out}


def parse_input(
    agent: Agent, given: GivenInput, *, loc: tuple[str, ...] = ("input",)
) -> AgentInput:
    """What ``agent.run`` receives for ``given``: the text for a text agent; for an agent with
    an input model, the model validated from the object (or from a string holding a JSON
    object). Anything else is Unprocessable (``validation_error``) with the field errors in
    ``errors``, each ``loc`` under ``loc`` (the API's ``("body", "input")``)."""
    model = input_model_of(agent)
    if model is None:
        if isinstance(given, str):
            return given
        raise _rejected(loc, f"agent {agent.name!r} takes text, not an object", "string_type")
    value: Any = given
    if isinstance(given, str):
        try:
            value = json.loads(given)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        message = f"agent {agent.name!r} takes an object (its input_schema, GET /v1/agents)"
        raise _rejected(loc, message, "dict_type")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            {"loc": [*loc, *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Unprocessable(
            f"{where}: {first['msg']}", code="validation_error", extensions={"errors": errors}
        ) from None


def _rejected(loc: tuple[str, ...], message: str, kind: str) -> Unprocessable:
    return Unprocessable(
        f"{'.'.join(loc)}: {message}",
        code="validation_error",
        extensions={"errors": [{"loc": list(loc), "msg": message, "type": kind}]},
    )


def input_text(value: AgentInput | GivenInput) -> str:
    """The input as one text (a session's user turn): the text, or the object's compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def given_form(value: AgentInput | GivenInput) -> GivenInput:
    """The input as a record keeps it: the text, or a JSON object."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
