"""``@tool``: a typed Python function becomes a Tool, its JSON schema derived by pydantic.

The signature is the contract: each parameter's type hint and default go into a pydantic
model, whose JSON schema the model sees and which validates the arguments it sends. A bad
argument is a ToolError (a failed result the model can correct), never a crash. Sync
functions run in a worker thread so they cannot block the event loop; async ones are awaited.
The first paragraph of the docstring (or ``description=``) describes the tool; describe a
parameter with ``Annotated[int, Field(description=...)]``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, overload

import anyio
import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema

from app.agents.tools.registry import Tool, ToolError, ToolFunction

MAX_ERRORS_SHOWN = 5


class _SchemaWithoutFieldTitles(GenerateJsonSchema):
    """Titles like ``"title": "Expression"`` only repeat the name and cost the model tokens."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """``@tool`` or ``@tool(name=..., description=...)`` over a sync or async function."""

    def wrap(target: Callable[..., Any]) -> Tool:
        return make_tool(target, name=name, description=description)

    return wrap(function) if function is not None else wrap


def make_tool(
    function: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> Tool:
    tool_name = name or function.__name__
    text = description or _first_paragraph(inspect.getdoc(function))
    if not text:
        raise TypeError(f"tool {tool_name!r} needs a docstring or description=")
    arguments_model = _arguments_model(function, tool_name)
    schema = arguments_model.model_json_schema(schema_generator=_SchemaWithoutFieldTitles)
    schema.pop("title", None)
    return Tool(
        name=tool_name,
        description=text,
        parameters=schema,
        function=_bind(function, arguments_model),
    )


def _arguments_model(function: Callable[..., Any], tool_name: str) -> type[BaseModel]:
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name!r}: *args and **kwargs have no schema")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"tool {tool_name!r}: arguments arrive by name, not by position")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints.get(parameter.name, Any), default)
    return create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def _bind(function: Callable[..., Any], arguments_model: type[BaseModel]) -> ToolFunction:
    is_async = inspect.iscoroutinefunction(function)

    async def call(arguments: dict[str, Any]) -> str:
        try:
            validated = arguments_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(_explain(exc)) from None
        # Field values as validated: a pydantic-model argument arrives as the model.
        kwargs = {field: getattr(validated, field) for field in type(validated).model_fields}
        if is_async:
            result = await function(**kwargs)
        else:
            # abandon_on_cancel: a timeout or cancel returns at once; the thread finishes alone.
            result = await anyio.to_thread.run_sync(
                functools.partial(function, **kwargs), abandon_on_cancel=True
            )
        return result if isinstance(result, str) else pydantic_core.to_json(result).decode()

    return call


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(problems)


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())
