"""A task's working memory, rebuilt for debugging (GET /v1/tasks/{task_id}/memory).

Nothing stores the list of messages an agent works with, so it is rebuilt from what is kept:
the session history the run was given, the task's input, then the run's own messages, tool
calls and tool results from its event log, in order. The last ``memory_summary`` event is
what the agent said it kept when it compacted that list. Owner or ``admin`` only: anyone
else is answered exactly like a missing task, so ids cannot be probed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from app.agents.events import (
    EVENT_ADAPTER,
    Event,
    MemorySummaryEvent,
    MessageEvent,
    RunStarted,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.protocol import input_text
from app.agents.sessions import SessionService
from app.core.errors import NotFound
from app.llm.types import ChatMessage, ToolCall
from app.security.principals import Principal
from app.security.scopes import Scope
from app.store.run_records import RunRecord
from app.store.run_store import RunStore

MAX_MESSAGES = 500  # the newest are kept; a longer memory is marked truncated
READ_BATCH = 500


@dataclass(frozen=True, slots=True)
class MemorySummary:
    summary: str
    messages_summarized: int
    seq: int


@dataclass(frozen=True, slots=True)
class MemorySnapshot:
    task_id: str
    session_id: str | None
    messages: list[ChatMessage]
    summary: MemorySummary | None
    truncated: bool


class _Transcript:
    """Folds a run's events into the messages the agent works with.

    A model answer that calls tools is one assistant message holding every call of that
    round (its streamed text as content), each result a ``tool`` message after it. A
    ``message`` event replaces the tokens that streamed it. Tokens never followed by a
    message (a run still streaming) become an assistant message at the end.
    """

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self._tokens: list[str] = []
        self._round_text: str | None = None
        self._calls: list[ToolCall] = []
        self._results: list[ChatMessage] = []

    def add(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.messages, self._tokens = [], []  # a redelivered task starts over
            self._calls, self._results = [], []
        elif isinstance(event, TokenEvent):
            self._close_round()  # text after tool calls: the model was asked again
            self._tokens.append(event.text)
        elif isinstance(event, ToolCallEvent):
            if not self._calls:
                self._round_text, self._tokens = "".join(self._tokens) or None, []
            self._calls.append(ToolCall(id=event.id, name=event.name, arguments=event.arguments))
        elif isinstance(event, ToolResultEvent):
            name = next((c.name for c in self._calls if c.id == event.id), None)
            self._results.append(
                ChatMessage(role="tool", content=event.output, tool_call_id=event.id, name=name)
            )
        elif isinstance(event, MessageEvent):
            self._close_round()
            self._tokens = []  # the message is the text they streamed
            self.messages.append(ChatMessage(role=event.role, content=event.content))
        elif isinstance(event, StepEvent):
            self._close_round()

    def _close_round(self) -> None:
        if self._calls:
            self.messages.append(
                ChatMessage(role="assistant", content=self._round_text, tool_calls=self._calls)
            )
            self.messages += self._results
            self._calls, self._results = [], []

    def finish(self) -> list[ChatMessage]:
        self._close_round()
        if self._tokens:
            self.messages.append(ChatMessage(role="assistant", content="".join(self._tokens)))
            self._tokens = []
        return self.messages


def _given_history(history: list[ChatMessage], record: RunRecord) -> tuple[list[ChatMessage], bool]:
    """The history the run was given, and whether older messages may be missing from it.

    A completed run appended its own exchange to the session (later runs may have added
    more): cut the session at that exchange. If the session was full, the oldest messages
    the run saw may have been dropped to make room.
    """
    if record.result is None:
        return history, False
    answer = ChatMessage(role="assistant", content=record.result.output)
    given = input_text(record.input)
    for start in range(len(history) - 2, -1, -1):
        user, assistant = history[start : start + 2]
        if assistant == answer and user.role == "user" and _same_input(user.content or "", given):
            return history[:start], True
    return history, False


def _same_input(turn: str, given: str) -> bool:
    """Whether a session's user turn is the task's input. An input for an agent with an input
    model is kept in the session as the validated model's JSON (defaults filled in, values
    coerced), so for those any JSON object stands for it."""
    return turn == given or (_json_object(turn) and _json_object(given))


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


async def task_memory(
    *,
    store: RunStore,
    sessions: SessionService,
    viewer: Principal,
    task_id: str,
    history_limit: int,
) -> MemorySnapshot:
    """The task's working memory as ``viewer`` may see it (its owner, or an admin)."""
    record = await store.get(task_id)
    if (
        record is None
        or record.kind != "task"
        or not (record.owner == viewer.id or viewer.has_scopes({Scope.ADMIN}))
    ):
        raise NotFound("No task with this id.", code="task_not_found")

    history: list[ChatMessage] = []
    truncated = False
    if record.session_id is not None:
        # The store, not SessionService.messages: an admin reads sessions it does not own.
        session = await sessions.store.messages(record.session_id, limit=history_limit, offset=0)
        history, cut = _given_history(session, record)
        truncated = cut and len(session) >= history_limit

    transcript = _Transcript()
    summary: MemorySummary | None = None
    first = await store.first_retained_seq(task_id)
    truncated = truncated or (first is not None and first > 1)
    after = 0
    while True:
        batch = await store.read_events(task_id, after=after, limit=READ_BATCH)
        for stored in batch:
            try:
                event = EVENT_ADAPTER.validate_json(stored.json)
            except ValidationError:
                continue  # a type this version does not know: not part of the memory view
            if isinstance(event, MemorySummaryEvent):
                summary = MemorySummary(event.summary, event.messages_summarized, stored.seq)
            transcript.add(event)
        if len(batch) < READ_BATCH:
            break
        after = batch[-1].seq

    messages = [
        *history,
        ChatMessage(role="user", content=input_text(record.input)),
        *transcript.finish(),
    ]
    if len(messages) > MAX_MESSAGES:
        messages, truncated = messages[-MAX_MESSAGES:], True
    return MemorySnapshot(
        task_id=record.id,
        session_id=record.session_id,
        messages=messages,
        summary=summary,
        truncated=truncated,
    )
