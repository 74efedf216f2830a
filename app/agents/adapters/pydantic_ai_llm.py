"""The service's own LLM as a Pydantic AI model, for an Agent built without one.

``Agent(name="support", instructions=...)`` with no model runs on ``ctx.llm``: the provider
the service is configured with (LLM_PROVIDER), its cache, its metrics and its usage
accounting, with the run's Cache-Control. It is a FunctionModel (the framework's own way to
plug a function in as a model) that turns the framework's messages and tool definitions into
one LLMRequest and streams the answer back as text deltas and tool calls.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

from pydantic_ai import (
    ModelMessage,
    ModelRequest,
    RetryFeedbackPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from app.agents.context import RunContext
from app.llm.types import ChatMessage, LLMDelta, LLMRequest, ToolCall, ToolSpec

MODEL_NAME = "agent-service"


def service_model(ctx: RunContext) -> FunctionModel:
    """A model that answers through this run's ``ctx.llm``."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        tools = [
            ToolSpec(
                name=tool.name,
                description=tool.description or "",
                parameters=tool.parameters_json_schema,
            )
            for tool in [*info.function_tools, *info.output_tools]
        ]
        request = LLMRequest(messages=to_chat(messages, info.instructions), tools=tools)
        produced = False
        async with aclosing(ctx.llm.stream(request)) as items:  # type: ignore[type-var]
            async for item in items:
                if isinstance(item, LLMDelta):
                    if item.text:
                        produced = True
                        yield item.text
                elif item.response.tool_calls:
                    produced = True
                    yield {
                        index: DeltaToolCall(
                            name=call.name,
                            json_args=json.dumps(call.arguments),
                            tool_call_id=call.id,
                        )
                        for index, call in enumerate(item.response.tool_calls)
                    }
        if not produced:
            yield ""  # the framework needs one item; an empty answer is still an answer

    return FunctionModel(stream_function=stream, model_name=MODEL_NAME)


def to_chat(messages: Sequence[ModelMessage], instructions: str | None) -> list[ChatMessage]:
    chat = [ChatMessage(role="system", content=instructions)] if instructions else []
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, SystemPromptPart):
                    chat.append(ChatMessage(role="system", content=part.content))
                elif isinstance(part, UserPromptPart):
                    chat.append(ChatMessage(role="user", content=_text(part.content)))
                elif isinstance(part, ToolReturnPart):
                    chat.append(
                        ChatMessage(
                            role="tool",
                            content=part.model_response_str(),
                            tool_call_id=part.tool_call_id,
                            name=part.tool_name,
                        )
                    )
                elif isinstance(part, RetryFeedbackPart):
                    chat.append(ChatMessage(role="user", content=part.model_response()))
            continue
        text = "".join(part.content for part in message.parts if isinstance(part, TextPart))
        calls = [
            ToolCall(id=part.tool_call_id, name=part.tool_name, arguments=part.args_as_dict())
            for part in message.parts
            if isinstance(part, ToolCallPart)
        ]
        chat.append(ChatMessage(role="assistant", content=text or None, tool_calls=calls or None))
    return chat


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # text items of a multi-part prompt; media is not sent
        return "\n".join(item for item in content if isinstance(item, str))
    return str(content)
