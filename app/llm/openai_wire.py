"""The OpenAI chat completions wire format: request messages out, streamed events in.

Events are read as server-sent events (``stream: true`` with usage in the last chunk); tool
call arguments arrive in pieces and are assembled at the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.llm.openai_failures import UNAVAILABLE, bad_response, llm_error
from app.llm.types import (
    ChatMessage,
    FinishReason,
    LLMDelta,
    LLMFinal,
    LLMResponse,
    LLMStreamItem,
    ToolCall,
    Usage,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def build(self, index: int) -> ToolCall:
        text = "".join(self.arguments).strip() or "{}"
        try:
            arguments = json.loads(text)
        except ValueError:
            raise bad_response("sent tool call arguments that are not JSON") from None
        if not isinstance(arguments, dict) or not self.name:
            raise bad_response("sent a malformed tool call")
        return ToolCall(id=self.id or f"call_{index}", name=self.name, arguments=arguments)


def wire_message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    if message.name and message.role != "tool":
        wire["name"] = message.name
    return wire


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        # comments (": ping"), event:, id: and retry: lines carry nothing we need
    if lines:
        yield "\n".join(lines)


async def read_events(response: httpx.Response, model: str) -> AsyncIterator[LLMStreamItem]:
    content: list[str] = []
    calls: dict[int, _PartialCall] = {}
    usage: Usage | None = None
    finish: FinishReason | None = None
    done = False
    async for data in _sse_data(response):
        if data.strip() == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            raise bad_response("sent an event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise bad_response("sent an unexpected event")
        if chunk.get("error"):
            raise llm_error(
                "the model provider reported an error mid-answer",
                UNAVAILABLE,
                retryable=True,
                cause=f"error event: {json.dumps(chunk['error'])[:200]}",
            )
        model = str(chunk.get("model") or model)
        if isinstance(chunk.get("usage"), dict):
            usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                content.append(text)
                yield LLMDelta(text=text)
            for position, part in enumerate(delta.get("tool_calls") or []):
                _merge_tool_call(calls, part, position)
            if choice.get("finish_reason"):
                finish = _FINISH.get(str(choice["finish_reason"]), "stop")
    if not done and finish is None:
        raise bad_response("ended its answer before it was complete")
    tool_calls = [calls[index].build(index) for index in sorted(calls)]
    if tool_calls and finish in (None, "stop"):
        finish = "tool_calls"  # some servers (Ollama) say "stop" after a tool call
    yield LLMFinal(
        response=LLMResponse(
            content="".join(content),
            tool_calls=tool_calls,
            usage=usage or Usage(),
            finish_reason=finish or "stop",
            model=model,
        )
    )


def _merge_tool_call(calls: dict[int, _PartialCall], part: Any, position: int) -> None:
    if not isinstance(part, dict):
        raise bad_response("sent a malformed tool call")
    index = part.get("index")
    call = calls.setdefault(index if isinstance(index, int) else position, _PartialCall())
    call.id = call.id or str(part.get("id") or "")
    function = part.get("function") or {}
    call.name = call.name or str(function.get("name") or "")
    if function.get("arguments"):
        call.arguments.append(str(function["arguments"]))


def _usage(raw: dict[str, Any]) -> Usage:
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    total = int(raw.get("total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
