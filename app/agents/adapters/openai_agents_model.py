"""The OpenAI Agents SDK's model calls sent through our LLM (``ctx.llm``).

A served Agent whose model is a name (or none) resolves it through ``RoutedModelProvider``:
each call becomes an ``LLMRequest`` to the service's provider, so the response cache,
Cache-Control, LLM metrics and the run's usage see it like any agent's call. The answer goes
back to the SDK in its own format: a streamed answer is re-cut into chat-completion chunks
and handed to the SDK's chunk handler, which makes the Responses events it expects.

Sent: system instructions, the conversation (text, tool calls and their outputs), function
tools and handoffs, temperature (0 when unset, as our agents) and max_tokens; a structured
output type is asked for in the instructions (the SDK then validates the answer). Not sent:
other model settings (tool_choice, top_p, ...), hosted tools (refused, as the SDK's own
Chat Completions model does), images and files.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, cast

from agents import Handoff, Model, ModelProvider, ModelResponse, ModelSettings, Tool, UserError
from agents import Usage as SdkUsage
from agents.agent_output import AgentOutputSchemaBase
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.models.chatcmpl_converter import Converter
from agents.models.chatcmpl_stream_handler import ChatCmplStreamHandler
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.models.interface import ModelTracing
from agents.models.multi_provider import MultiProvider
from agents.tool import FunctionTool
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseOutputItem,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam

from app.agents.run_llm import RunLLM
from app.llm.types import (
    ChatMessage,
    LLMDelta,
    LLMRequest,
    LLMResponse,
    LLMStreamItem,
    Role,
    ToolCall,
    ToolSpec,
    Usage,
)

# Model names with these prefixes name another SDK provider: the SDK resolves them itself.
FOREIGN_PREFIXES = ("litellm/", "any-llm/")


class RoutedModelProvider(ModelProvider):
    """Resolves model names to ``RoutedModel`` for one run."""

    def __init__(self, llm: RunLLM) -> None:
        self.llm = llm
        self._foreign: MultiProvider | None = None

    def get_model(self, model_name: str | None) -> Model:
        if model_name and model_name.startswith(FOREIGN_PREFIXES):
            self._foreign = self._foreign or MultiProvider()
            return self._foreign.get_model(model_name)
        name = model_name.removeprefix("openai/") if model_name else None
        return RoutedModel(self, name or None)


def is_routed(model: object) -> bool:
    """Whether an Agent with this ``model`` goes through RoutedModelProvider (the SDK asks
    the provider for names, and uses a Model object as it is)."""
    if isinstance(model, Model):
        return False
    return not (isinstance(model, str) and model.startswith(FOREIGN_PREFIXES))


class RoutedModel(Model):
    def __init__(self, provider: RoutedModelProvider, name: str | None) -> None:
        self._provider = provider
        self._name = name  # None: the service's MODEL

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: ResponsePromptParam | None = None,
    ) -> ModelResponse:
        request = self._request(
            system_instructions, input, model_settings, tools, output_schema, handoffs
        )
        response = await self._provider.llm.complete(request)
        return ModelResponse(
            output=output_items(response), usage=sdk_usage(response.usage), response_id=None
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: ResponsePromptParam | None = None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        request = self._request(
            system_instructions, input, model_settings, tools, output_schema, handoffs
        )
        started = Response(
            id=FAKE_RESPONSES_ID,
            created_at=time.time(),
            model=request.model or "",
            object="response",
            output=[],
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
            temperature=request.temperature,
        )
        chunks = self._chunks(self._provider.llm.stream(request), request.model or "")
        # The handler reads the chunks with ``async for`` only: any async iterator serves.
        async for event in ChatCmplStreamHandler.handle_stream(started, cast(Any, chunks)):
            yield event

    async def _chunks(
        self, items: AsyncIterator[LLMStreamItem], model: str
    ) -> AsyncIterator[ChatCompletionChunk]:
        streamed_text = False
        # aclosing: whatever ends this iteration closes the upstream call at once.
        async with aclosing(items) as stream:  # type: ignore[type-var]
            async for item in stream:
                if isinstance(item, LLMDelta):
                    if item.text:
                        streamed_text = True
                        yield _chunk(model, ChoiceDelta(content=item.text))
                    continue
                response = item.response
                if response.content and not streamed_text:
                    yield _chunk(model, ChoiceDelta(content=response.content))
                if response.tool_calls:
                    calls = [_delta_call(i, call) for i, call in enumerate(response.tool_calls)]
                    yield _chunk(model, ChoiceDelta(tool_calls=calls))
                yield _usage_chunk(model, response.usage)

    def _request(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
    ) -> LLMRequest:
        system = system_instructions or ""
        if output_schema is not None and not output_schema.is_plain_text():
            schema = json.dumps(output_schema.json_schema(), separators=(",", ":"))
            system = (
                f"{system}\n\nAnswer with only a JSON value matching this JSON schema: {schema}"
            )
        messages = [ChatMessage(role="system", content=system.strip())] if system.strip() else []
        messages.extend(chat_messages(input))
        specs = [_tool_spec(tool) for tool in tools]
        specs.extend(
            ToolSpec(
                name=handoff.tool_name,
                description=handoff.tool_description,
                parameters=handoff.input_json_schema,
            )
            for handoff in handoffs
        )
        temperature = model_settings.temperature
        return LLMRequest(
            messages=messages,
            tools=specs,
            model=self._name,
            temperature=0.0 if temperature is None else temperature,
            max_tokens=model_settings.max_tokens,
        )


def chat_messages(input: str | list[TResponseInputItem]) -> list[ChatMessage]:
    """SDK input items as our chat messages (through the SDK's own Chat Completions
    conversion, so tool calls and outputs pair up as the SDK pairs them)."""
    converted: list[ChatMessage] = []
    for message in Converter.items_to_messages(input):
        raw = cast(dict[str, Any], message)
        role = raw.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant", "tool"):
            continue
        calls = [_tool_call(call) for call in raw.get("tool_calls") or []]
        converted.append(
            ChatMessage(
                role=cast(Role, role),
                content=_text(raw.get("content")),
                tool_calls=calls or None,
                tool_call_id=raw.get("tool_call_id"),
            )
        )
    return converted


def output_items(response: LLMResponse) -> list[ResponseOutputItem]:
    items: list[ResponseOutputItem] = []
    if response.content:
        text = ResponseOutputText(text=response.content, type="output_text", annotations=[])
        items.append(
            ResponseOutputMessage(
                id=FAKE_RESPONSES_ID,
                content=[text],
                role="assistant",
                status="completed",
                type="message",
            )
        )
    items.extend(
        ResponseFunctionToolCall(
            id=FAKE_RESPONSES_ID,
            call_id=call.id,
            name=call.name,
            arguments=json.dumps(call.arguments),
            type="function_call",
        )
        for call in response.tool_calls
    )
    return items


def sdk_usage(usage: Usage) -> SdkUsage:
    return SdkUsage(
        requests=1,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def _tool_spec(tool: Tool) -> ToolSpec:
    if not isinstance(tool, FunctionTool):
        raise UserError(
            f"{type(tool).__name__} is a hosted tool: served agents whose model goes through "
            "the service's LLM take function tools only (give the Agent an SDK Model object "
            "to use hosted tools)"
        )
    return ToolSpec(
        name=tool.name, description=tool.description or "", parameters=tool.params_json_schema
    )


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = raw.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    return ToolCall(
        id=str(raw.get("id") or ""),
        name=str(function.get("name") or ""),
        arguments=arguments if isinstance(arguments, dict) else {},
    )


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    parts = [part.get("text", "") for part in content if isinstance(part, dict)]
    return "".join(str(part) for part in parts)


def _delta_call(index: int, call: ToolCall) -> ChoiceDeltaToolCall:
    function = ChoiceDeltaToolCallFunction(name=call.name, arguments=json.dumps(call.arguments))
    return ChoiceDeltaToolCall(index=index, id=call.id, type="function", function=function)


def _usage_chunk(model: str, usage: Usage) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=FAKE_RESPONSES_ID,
        choices=[],
        created=0,
        model=model,
        object="chat.completion.chunk",
        usage=CompletionUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        ),
    )


def _chunk(model: str, delta: ChoiceDelta) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=FAKE_RESPONSES_ID,
        choices=[Choice(index=0, delta=delta, finish_reason=None)],
        created=0,
        model=model,
        object="chat.completion.chunk",
    )
