"""The GenAI semantic conventions we follow, in the version the environment asks for.

The conventions are in development. As they ask of an instrumentation, the default is the
v1.36 shape (``gen_ai.system``; message contents as span events ``gen_ai.{role}.message`` and
``gen_ai.choice``); ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` switches to
the latest one (``gen_ai.provider.name``; contents as the ``gen_ai.input.messages``,
``gen_ai.output.messages`` and ``gen_ai.system_instructions`` attributes). Everything else
(operation, agent, tool, request/response model, usage, finish reasons) has one name in both.

Message contents are recorded only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or the latest conventions'
``SPAN_ONLY``/``SPAN_AND_EVENT``): prompts carry user data. No OpenTelemetry import here;
the LLM types are read by shape (this package sits below app/llm).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

LATEST_OPT_IN = "gen_ai_latest_experimental"
_CAPTURE_VALUES = frozenset({"true", "1", "yes", "span_only", "span_and_event"})

OPERATION = "gen_ai.operation.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"
# Ours: whether our cache answered (gen_ai.usage.cache_read.* is the provider's own cache).
CACHED = "agent_service.llm.cached"
CACHE_STATUS = "agent_service.llm.cache"  # hit, miss or bypass (not cacheable, no-cache)
RUN_ID = "agent_service.run.id"
STEP_NUMBER = "agent_service.step.number"


class ToolCallLike(Protocol):
    id: str
    name: str
    arguments: dict[str, Any]


class ChatMessageLike(Protocol):
    role: str
    content: str | None
    tool_calls: list[Any] | None
    tool_call_id: str | None


class ChatRequestLike(Protocol):
    messages: list[Any]
    model: str | None
    temperature: float
    max_tokens: int | None


class UsageLike(Protocol):
    prompt_tokens: int
    completion_tokens: int


class ChatResponseLike(Protocol):
    content: str
    tool_calls: list[Any]
    usage: Any
    finish_reason: str
    model: str
    cached: bool


Event = tuple[str, dict[str, str | int]]  # a span event: name, attributes


@dataclass(frozen=True, slots=True)
class GenAIConventions:
    latest: bool = False
    capture_content: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GenAIConventions:
        opt_in = {
            value.strip().lower()
            for value in environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")
        }
        capture = environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
        return cls(
            latest=LATEST_OPT_IN in opt_in,
            capture_content=capture.strip().lower() in _CAPTURE_VALUES,
        )

    @property
    def provider_key(self) -> str:
        return "gen_ai.provider.name" if self.latest else "gen_ai.system"

    # -- spans' attributes ----------------------------------------------------------------
    def agent_attributes(
        self, *, agent: str, run_id: str, session_id: str | None, provider: str
    ) -> dict[str, str]:
        attributes = {
            OPERATION: "invoke_agent",
            AGENT_NAME: agent,
            self.provider_key: provider,
            RUN_ID: run_id,
        }
        if session_id:
            attributes[CONVERSATION_ID] = session_id
        return attributes

    def chat_attributes(
        self, *, provider: str, request: ChatRequestLike, server: str | None
    ) -> dict[str, str | int | float]:
        attributes: dict[str, str | int | float] = {
            OPERATION: "chat",
            self.provider_key: provider,
            REQUEST_MODEL: request.model or "",
            REQUEST_TEMPERATURE: request.temperature,
        }
        if request.max_tokens is not None:
            attributes[REQUEST_MAX_TOKENS] = request.max_tokens
        if server:
            host, _, port = server.rpartition(":")
            if host and port.isdigit():
                attributes["server.address"], attributes["server.port"] = host, int(port)
            else:
                attributes["server.address"] = server
        return attributes

    def response_attributes(self, response: ChatResponseLike, *, cacheable: bool) -> dict[str, Any]:
        usage = response.usage
        return {
            RESPONSE_MODEL: response.model,
            FINISH_REASONS: (response.finish_reason,),
            INPUT_TOKENS: usage.prompt_tokens,
            OUTPUT_TOKENS: usage.completion_tokens,
            CACHED: response.cached,
            CACHE_STATUS: "bypass" if not cacheable else "hit" if response.cached else "miss",
        }

    # -- contents (only when captured) ----------------------------------------------------
    def input_content(
        self, messages: Sequence[ChatMessageLike]
    ) -> tuple[dict[str, str], list[Event]]:
        """Attributes (latest) or span events (v1.36) for the prompt."""
        if self.latest:
            system = [m for m in messages if m.role == "system"]
            attributes = {
                "gen_ai.input.messages": _json(
                    [_message(m) for m in messages if m.role != "system"]
                )
            }
            if system:
                attributes["gen_ai.system_instructions"] = _json(
                    [{"type": "text", "content": m.content or ""} for m in system]
                )
            return attributes, []
        events: list[Event] = []
        for message in messages:
            body: dict[str, str | int] = {"content": message.content or ""}
            if message.tool_calls:
                body["tool_calls"] = _json([_call(call) for call in message.tool_calls])
            if message.tool_call_id:
                body["id"] = message.tool_call_id
            events.append((f"gen_ai.{message.role}.message", body))
        return {}, events

    def output_content(self, response: ChatResponseLike) -> tuple[dict[str, str], list[Event]]:
        parts: list[dict[str, Any]] = []
        if response.content:
            parts.append({"type": "text", "content": response.content})
        parts += [{"type": "tool_call", **_call(call)} for call in response.tool_calls]
        if self.latest:
            output = [
                {"role": "assistant", "parts": parts, "finish_reason": response.finish_reason}
            ]
            return {"gen_ai.output.messages": _json(output)}, []
        message = {
            "content": response.content,
            "tool_calls": [_call(c) for c in response.tool_calls],
        }
        choice: dict[str, str | int] = {
            "index": 0,
            "finish_reason": response.finish_reason,
            "message": _json(message),
        }
        return {}, [("gen_ai.choice", choice)]

    def tool_content(self, arguments: Mapping[str, Any]) -> dict[str, str]:
        return {TOOL_ARGUMENTS: _json(dict(arguments))} if self.capture_content else {}


def _call(call: ToolCallLike) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def _message(message: ChatMessageLike) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        )
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    parts += [{"type": "tool_call", **_call(call)} for call in message.tool_calls or []]
    return {"role": message.role, "parts": parts}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
