"""What the client verbs show of a run's events, and how they ask a human-input question.

The answer text (tokens) goes to stdout; questions, tool calls and notices to stderr, so
``agent-service run chat "..." > answer.txt`` keeps only the answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from agent_service_client.events import InputRequired, StreamItem


class NoAnswer(Exception):
    """stdin ended while a question was waiting for its answer."""


def _say(text: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    out.write(text)
    out.flush()


def ask(question: InputRequired) -> str | bool:
    """The answer read from stdin: a choice by number or name, y/n for a confirm."""
    _say(f"\n? {question.prompt}\n")
    choices = question.choices or []
    for number, choice in enumerate(choices, 1):
        _say(f"  {number}) {choice}\n")
    hint = {"choice": "number or name", "confirm": "y/n"}.get(question.kind, "answer")
    while True:
        _say(f"{hint}> ")
        line = sys.stdin.readline()
        if not line:
            raise NoAnswer
        text = line.strip()
        if question.kind == "confirm" and text.lower() in ("y", "yes", "true", "n", "no", "false"):
            return text.lower() in ("y", "yes", "true")
        if question.kind == "choice":
            if text.isdigit() and 1 <= int(text) <= len(choices):
                chosen: str = choices[int(text) - 1]
                return chosen
            if text in choices:
                return text
        if question.kind == "text" and text:
            return text
        _say("  not an answer to this question; try again\n")


def show(
    items: Iterable[StreamItem], answer: Callable[[str, str | bool], object]
) -> tuple[str, str | None]:
    """Prints the events as they come, asks their questions (``answer`` sends the reply),
    and returns how the run ended: ("completed", None) or ("error", its code)."""
    from agent_service_client import events as ev

    streamed = False  # tokens were printed since the last message
    for item in items:
        if isinstance(item, ev.TokenEvent):
            _say(item.text, sys.stdout)
            streamed = True
        elif isinstance(item, ev.MessageEvent) and item.role == "assistant":
            if not streamed:
                _say(item.content, sys.stdout)
            _say("\n", sys.stdout)
            streamed = False
        elif isinstance(item, ev.ToolCallEvent):
            _say(f"\n[tool] {item.name}({json.dumps(item.arguments)})\n")
        elif isinstance(item, ev.ToolResultEvent):
            _say(f"[tool] -> {item.output}\n")
        elif isinstance(item, ev.InputRequired):
            if streamed:
                _say("\n", sys.stdout)
                streamed = False
            answer(item.request_id, ask(item))
        elif isinstance(item, ev.EventsMissed):
            _say(f"\n[events {item.from_seq}..{item.to_seq} are no longer kept]\n")
        elif isinstance(item, ev.ErrorEvent):
            _say(f"\nerror: {item.code}: {item.message}\n")
            return "error", item.code
        elif isinstance(item, ev.RunCompleted):
            if streamed:
                _say("\n", sys.stdout)
            return "completed", None
    return "ended", None
