"""One LangGraph run's stream parts (``astream(version="v2")``) as our events.

- ``messages``: an AI message's text deltas become ``token`` events, in order.
- ``updates``: an AIMessage with ``tool_calls`` becomes ``tool_call`` events and its
  ``usage_metadata`` is counted (``ctx.add_usage``); a ToolMessage becomes ``tool_result``.
  A message is reported once, by id: a subgraph's messages come again in its parent's update,
  and a node may return the whole list. The root's ``__interrupt__`` is what to ask.
- ``tasks``: each node of the graph itself (not of its subgraphs) is a step: counted against
  max_steps, a pause point, and a ``step`` event when it ends (not when it was interrupted:
  it runs again, under the same task id, once answered).
- ``values``: every message in the graph's state is already known (so earlier turns kept in
  the thread are not reported again); the last one is the output when no AI message spoke.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.types import Interrupt, StreamMode
from pydantic import BaseModel
from pydantic_core import to_json

from app.agents.context import RunContext
from app.agents.events import Event, StepEvent, TokenEvent, ToolCallEvent, ToolResultEvent
from app.llm.types import Usage

STREAM_MODES: list[StreamMode] = ["messages", "updates", "tasks", "values"]
INTERRUPT_KEY = "__interrupt__"


class GraphStream:
    """Reads the parts of one run (across its resumptions) and keeps what the end needs."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._known: set[str] = set()  # ids of messages already reported or in the state
        self._steps: dict[str, int] = {}  # task id -> step number
        self._started: dict[str, float] = {}
        self.interrupts: list[Interrupt] = []
        self.last_ai_text: str | None = None
        self.last_values: Any = None

    async def take(self, part: Mapping[str, Any]) -> list[Event]:
        kind, root, data = part["type"], not part["ns"], part["data"]
        if kind == "messages":
            return _tokens(data[0])
        if kind == "updates":
            return self._updates(data, root=root)
        if kind == "tasks" and root:
            return await self._task(data)
        if kind == "values" and root:
            self.last_values = data
            for message in _messages_in(data):
                self._known.add(_key(message))
        return []

    def output(self) -> str:
        """The last AI message's text; else the graph's final state as JSON."""
        if self.last_ai_text is not None:
            return self.last_ai_text
        return to_json(self.last_values, fallback=str).decode()

    def _updates(self, data: Mapping[str, Any], *, root: bool) -> list[Event]:
        events: list[Event] = []
        for node, update in data.items():
            if node == INTERRUPT_KEY:
                if root:
                    self.interrupts.extend(update)
                continue
            for message in _messages_in(update):
                key = _key(message)
                if key in self._known:
                    continue
                self._known.add(key)
                events.extend(self._reported(message))
        return events

    def _reported(self, message: BaseMessage) -> list[Event]:
        if isinstance(message, ToolMessage):
            output = str(message.text) if message.text else to_json(message.content).decode()
            return [
                ToolResultEvent(
                    id=message.tool_call_id, output=output, success=message.status != "error"
                )
            ]
        if not isinstance(message, AIMessage):
            return []
        if message.usage_metadata:
            usage = message.usage_metadata
            prompt, completion = usage["input_tokens"], usage["output_tokens"]
            self._ctx.add_usage(
                Usage(
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    total_tokens=usage.get("total_tokens") or prompt + completion,
                )
            )
        if message.text:
            self.last_ai_text = str(message.text)
        return [
            ToolCallEvent(
                id=call["id"] or f"call-{index}", name=call["name"], arguments=call["args"]
            )
            for index, call in enumerate(message.tool_calls)
        ]

    async def _task(self, data: Mapping[str, Any]) -> list[Event]:
        task_id = data["id"]
        if "triggers" in data:  # a node starts
            await self._ctx.checkpoint()
            if task_id not in self._steps:  # a resumed node is the same step
                self._steps[task_id] = self._ctx.begin_step()
            self._started[task_id] = time.monotonic()
            return []
        if data.get("interrupts"):
            return []
        number = self._steps.get(task_id)
        started = self._started.pop(task_id, None)
        if number is None or started is None:
            return []
        duration = round(time.monotonic() - started, 4)
        return [StepEvent(number=number, duration_s=duration, success=data.get("error") is None)]


def _tokens(message: BaseMessage) -> list[Event]:
    if isinstance(message, AIMessage) and message.content:  # AIMessageChunk is one too
        text = str(message.text)
        if text:
            return [TokenEvent(text=text)]
    return []


def _key(message: BaseMessage) -> str:
    # Messages without an id are told apart by object: a node's new message, met once.
    return message.id or f"object-{id(message)}"


def _messages_in(value: Any, depth: int = 0) -> Iterator[BaseMessage]:
    """Messages in a node's update or in the state: the value itself, or inside it through
    up to three levels of lists, mappings, pydantic models and dataclasses."""
    if isinstance(value, BaseMessage):
        yield value
    elif depth < 3:
        for item in _children(value):
            yield from _messages_in(item, depth + 1)


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, Mapping):
        return value.values()
    if isinstance(value, BaseModel):
        return [getattr(value, name) for name in type(value).model_fields]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, field.name) for field in dataclasses.fields(value)]
    return ()
