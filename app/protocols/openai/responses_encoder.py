"""Our run events -> OpenAI Responses stream events, and the Response they add up to.

One encoder per response: it is fed the events of the response's stretch of the run (from
its start, or after the question it answers) and returns the Responses events each one
makes, numbered from 0 (``sequence_number``). The numbering depends only on the events fed,
so replaying the run's log gives the same numbers: that is what resuming with
``starting_after`` relies on. Runs of token events merged into one by a reader that fell
behind (app/agents/followers.py) count as the tokens they hold, so they keep their numbers.

Mapping (documented in docs/architecture.md, OpenAI Responses):
- ``token`` -> ``response.output_text.delta`` of an assistant ``message`` item (opened with
  ``output_item.added`` + ``content_part.added``); the agent's ``message`` closes it, its
  content the final text (``output_text.done``, ``content_part.done``, ``output_item.done``).
- ``tool_call`` / ``tool_result`` -> an ``mcp_call`` item: a tool the server ran (its label
  is the agent), never a ``function_call`` for the client to execute.
- ``input_required`` -> an ``mcp_approval_request`` item (``name`` the kind, ``arguments`` the
  question as JSON: prompt, kind, choices), then ``response.incomplete`` with
  ``incomplete_details.reason`` ``input_required``.
- ``run_completed`` -> ``response.completed`` with ``usage``; ``error`` -> ``response.failed``
  (``error.code`` OpenAI's, ``error.type`` ours), or, cancelled, ``response.incomplete`` with
  status ``cancelled`` and reason ``cancelled``.
- plan, step, log and memory events have no Responses counterpart and are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.agents.events import (
    ErrorEvent,
    InputRequired,
    MessageEvent,
    RunCompleted,
    RunStarted,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.feed import LoggedEvent
from app.llm.types import Usage

Json = dict[str, Any]
# Our error codes that end a run because someone stopped it, not because it failed.
CANCEL_CODES = frozenset(
    {"cancelled", "client_disconnected", "interrupted", "rolled_back", "shutdown"}
)
# ResponseError.code is a closed list in OpenAI's API: ours go in error.type.
_ERROR_CODES = {"llm_rate_limited": "rate_limit_exceeded"}


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The fields of a Response that do not come from the run's events."""

    id: str
    run_id: str
    model: str
    created_at: float
    background: bool = False
    queued: bool = False  # a background response's first stretch: its task waits for a worker
    first: bool = True  # the run's first response (not one answering its question)
    instructions: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    previous_response_id: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    store: bool = True


@dataclass(slots=True)
class _Message:
    index: int
    item_id: str
    parts: list[str] = field(default_factory=list)


def _usage(usage: Usage) -> Json:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _message_item(item_id: str, text: str | None, status: str) -> Json:
    content = [] if text is None else [_text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseEncoder:
    def __init__(self, head: ResponseHead) -> None:
        self.head = head
        self.number = 0  # the next sequence_number
        self.output: list[Json] = []
        self.status = "queued" if head.queued else "in_progress"
        self.ended = False
        self.completed_at: float | None = None
        self._usage: Usage | None = None
        self._error: Json | None = None
        self._incomplete: Json | None = None
        self._message: _Message | None = None
        self._calls: dict[str, int] = {}  # tool call id -> output index of its mcp_call
        self.question: tuple[InputRequired, int] | None = None  # what it ended asking, and seq

    # -- the Response ------------------------------------------------------------------------
    def snapshot(self) -> Json:
        """The Response as it stands (the body of GET, and of the lifecycle events)."""
        head = self.head
        return {
            "id": head.id,
            "object": "response",
            "created_at": head.created_at,
            "status": self.status,
            "background": head.background,
            "completed_at": self.completed_at,
            "error": self._error,
            "incomplete_details": self._incomplete,
            "instructions": head.instructions,
            "max_output_tokens": head.max_output_tokens,
            "metadata": dict(head.metadata),
            "model": head.model,
            "output": [dict(item) for item in self.output],
            "parallel_tool_calls": False,
            "previous_response_id": head.previous_response_id,
            "store": head.store,
            "temperature": head.temperature,
            "tool_choice": "auto",
            "tools": [],
            "top_p": None,
            "truncation": "disabled",
            "usage": None if self._usage is None else _usage(self._usage),
            "user": None,
            # Ours: where the same run is in the native API (GET /v1/runs/{run_id}).
            "agent_run": {"run_id": head.run_id},
        }

    def output_text(self) -> str:
        return "".join(
            part["text"]
            for item in self.output
            if item["type"] == "message"
            for part in item["content"]
        )

    # -- events ------------------------------------------------------------------------------
    def _event(self, type_: str, **fields: Any) -> Json:
        event = {"type": type_, "sequence_number": self.number, **fields}
        self.number += 1
        return event

    def _lifecycle(self, type_: str) -> Json:
        return self._event(type_, response=self.snapshot())

    def opening(self) -> list[Json]:
        """``response.created`` (and ``in_progress`` unless the task is still queued)."""
        events = [self._lifecycle("response.created")]
        if self.status == "in_progress":
            events.append(self._lifecycle("response.in_progress"))
        return events

    def feed(self, item: LoggedEvent) -> list[Json]:
        """The Responses events one of the run's events makes (none once ended)."""
        if self.ended:
            return []
        if item.type == "token":
            return self._token(item)
        event = item.event
        out: list[Json] = []
        if isinstance(event, RunStarted):
            if self.status == "queued":
                self.status = "in_progress"
                out.append(self._lifecycle("response.in_progress"))
        elif isinstance(event, MessageEvent):
            if event.role == "assistant":
                out += self._message_event(event.content, item.seq)
        elif isinstance(event, ToolCallEvent):
            out += self._close_message()
            out += self._tool_call(event, item.seq)
        elif isinstance(event, ToolResultEvent):
            out += self._tool_result(event)
        elif isinstance(event, InputRequired):
            out += self._close_message()
            out += self._question(event, item.seq)
        elif isinstance(event, RunCompleted):
            out += self._completed(event, item.seq)
        elif isinstance(event, ErrorEvent):
            out += self._failed(event)
        return out

    def _token(self, item: LoggedEvent) -> list[Json]:
        event = item.event
        assert isinstance(event, TokenEvent)  # noqa: S101 - the type said so
        out = self._open_message(item.first_seq)
        message = self._message
        assert message is not None  # noqa: S101 - just opened
        message.parts.append(event.text)
        # A merged run of tokens counts as the tokens it holds: the numbers stay the log's.
        self.number += item.seq - item.first_seq
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=message.item_id,
                output_index=message.index,
                content_index=0,
                delta=event.text,
                logprobs=[],
            )
        )
        return out

    def _open_message(self, seq: int) -> list[Json]:
        if self._message is not None:
            return []
        item_id = f"msg_{self.head.run_id}_{seq}"
        index = len(self.output)
        self._message = _Message(index, item_id)
        self.output.append(_message_item(item_id, "", "in_progress"))
        return [
            self._event(
                "response.output_item.added",
                output_index=index,
                item=_message_item(item_id, None, "in_progress"),
            ),
            self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=_text_part(""),
            ),
        ]

    def _close_message(self, text: str | None = None, status: str = "completed") -> list[Json]:
        message, self._message = self._message, None
        if message is None:
            return []
        final = text if text else "".join(message.parts)
        item = _message_item(message.item_id, final, status)
        self.output[message.index] = item
        where = {"item_id": message.item_id, "output_index": message.index, "content_index": 0}
        return [
            self._event("response.output_text.done", **where, text=final, logprobs=[]),
            self._event("response.content_part.done", **where, part=_text_part(final)),
            self._event("response.output_item.done", output_index=message.index, item=item),
        ]

    def _message_event(self, content: str, seq: int) -> list[Json]:
        if self._message is None:
            if not content:
                return []
            out = self._open_message(seq)
            assert self._message is not None  # noqa: S101 - just opened
            self._message.parts.append(content)
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self._message.item_id,
                    output_index=self._message.index,
                    content_index=0,
                    delta=content,
                    logprobs=[],
                )
            )
            return out + self._close_message(content)
        return self._close_message(content)

    def _tool_call(self, event: ToolCallEvent, seq: int) -> list[Json]:
        item_id = f"mcp_{self.head.run_id}_{seq}"
        index = len(self.output)
        arguments = json.dumps(event.arguments, separators=(",", ":"))
        item = {
            "id": item_id,
            "type": "mcp_call",
            "name": event.name,
            "arguments": arguments,
            "server_label": self.head.model,
            "status": "in_progress",
            "output": None,
            "error": None,
        }
        self.output.append(item)
        self._calls[event.id] = index
        return [
            self._event("response.output_item.added", output_index=index, item=dict(item)),
            self._event(
                "response.mcp_call_arguments.done",
                item_id=item_id,
                output_index=index,
                arguments=arguments,
            ),
            self._event("response.mcp_call.in_progress", item_id=item_id, output_index=index),
        ]

    def _tool_result(self, event: ToolResultEvent) -> list[Json]:
        index = self._calls.pop(event.id, None)
        if index is None:
            return []
        item = dict(self.output[index])
        item["output"] = event.output
        item["status"] = "completed" if event.success else "failed"
        if not event.success:
            item["error"] = {"type": "mcp_tool_execution_error", "content": event.output}
        self.output[index] = item
        where = {"item_id": item["id"], "output_index": index}
        phase = "response.mcp_call.completed" if event.success else "response.mcp_call.failed"
        return [
            self._event(phase, **where),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def _unfinished_calls(self) -> list[Json]:
        out: list[Json] = []
        for index in self._calls.values():
            item = {**self.output[index], "status": "incomplete"}
            self.output[index] = item
            out.append(self._event("response.output_item.done", output_index=index, item=item))
        self._calls.clear()
        return out

    def _question(self, event: InputRequired, seq: int) -> list[Json]:
        self.question = (event, seq)
        index = len(self.output)
        question = {"prompt": event.prompt, "kind": event.kind, "choices": event.choices}
        item = {
            "id": approval_item_id(event.request_id),
            "type": "mcp_approval_request",
            "name": event.kind,
            "server_label": self.head.model,
            "arguments": json.dumps(question, separators=(",", ":")),
        }
        self.output.append(item)
        self.status = "incomplete"
        self._incomplete = {"reason": "input_required"}
        self.ended = True
        return [
            *self._unfinished_calls(),
            self._event("response.output_item.added", output_index=index, item=dict(item)),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
            self._lifecycle("response.incomplete"),
        ]

    def _completed(self, event: RunCompleted, seq: int) -> list[Json]:
        out = self._close_message()
        has_message = any(item["type"] == "message" for item in self.output)
        if self.head.first and not has_message and event.output:
            out += self._message_event(event.output, seq)  # an agent that streamed nothing
        out += self._unfinished_calls()
        self._usage = event.usage
        self.status = "completed"
        self.completed_at = event.ts.timestamp()
        self.ended = True
        out.append(self._lifecycle("response.completed"))
        return out

    def _failed(self, event: ErrorEvent) -> list[Json]:
        out = self._close_message(status="incomplete")
        out += self._unfinished_calls()
        self.ended = True
        self.completed_at = event.ts.timestamp()
        if event.code in CANCEL_CODES:
            self.status = "cancelled"
            self._incomplete = {"reason": "cancelled"}
            out.append(self._lifecycle("response.incomplete"))
            return out
        if event.code == "budget_exceeded":  # stopped at a token budget: what it made stands
            self.status = "incomplete"
            self._incomplete = {"reason": "budget_exceeded"}
            out.append(self._lifecycle("response.incomplete"))
            return out
        self.status = "failed"
        self._error = {
            "code": _ERROR_CODES.get(event.code, "server_error"),
            "message": event.message,
            "type": event.code,
        }
        out.append(self._lifecycle("response.failed"))
        return out


def approval_item_id(request_id: str) -> str:
    """The id of the output item asking a question: an ``mcp_approval_response`` names it."""
    return f"mcpr_{request_id}"
