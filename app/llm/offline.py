"""A deterministic, network-free LLM for development, tests and benchmarks.

The answer is a pure function of the messages and offered tools (a sha256 picks the wording),
so the same request always gets the same text, tool calls and usage. Timing is real: a delay
before the first token, then one token at a time at the configured rate with ``asyncio.sleep``
in between, so streaming, time-to-first-token and cancellation behave like a remote model.
A token is a word plus its trailing space; usage counts words.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import hashlib
import json
import re
import time
from collections.abc import AsyncGenerator, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field

from app.core.llm_settings import OfflineSettings
from app.llm.types import (
    ChatMessage,
    FinishReason,
    LLMDelta,
    LLMFinal,
    LLMRequest,
    LLMResponse,
    LLMStreamItem,
    ToolCall,
    Usage,
)

# Runs of characters that may form an arithmetic expression; validated with ast afterwards.
_EXPRESSION_RUN = re.compile(r"[\d.+\-*/%() ]+")
_TIME_QUESTION = re.compile(r"\b(time|date|day|today|clock|now)\b", re.IGNORECASE)
_ARITHMETIC_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.UAdd, ast.USub,
)  # fmt: skip
_OPENERS = (
    "Here is an offline answer.",
    "Offline model speaking.",
    "A deterministic reply follows.",
    "This answer comes from the offline model.",
)
_FILLER = (
    "it", "looks", "like", "a", "clear", "question", "and", "the", "short", "answer", "is",
    "that", "this", "depends", "on", "context", "so", "consider", "details", "carefully",
    "before", "deciding", "what", "works", "best", "for", "your", "case", "today",
)  # fmt: skip
_FILLER_TEXT = " ".join(_FILLER)
_WORD = re.compile(r"\S+")
# Answers up to this size are shared between the calls that give them (_shared_tokens).
_SHARED_MAX_TOKENS = 1024
_SHARED_MAX_CHARS = 16_384
# Yield to the event loop every this many tokens when streaming as fast as possible, so one
# long answer cannot starve other requests.
_YIELD_EVERY = 64


def count_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def prompt_tokens(messages: list[ChatMessage]) -> int:
    """Prompt size in offline tokens: the words of every message's content."""
    return sum(count_words(message.content) for message in messages)


def find_expression(text: str) -> str | None:
    """The longest arithmetic expression (with at least one operator) in ``text``, or None."""
    best: str | None = None
    for match in _EXPRESSION_RUN.finditer(text):
        run = match.group().strip().rstrip(".")
        # A stray bracket at either end ("(3+4" in prose) should not hide the expression.
        for candidate in (run, run.lstrip("(").rstrip(")").strip()):
            if (best is None or len(candidate) > len(best)) and _is_arithmetic(candidate):
                best = candidate
                break
    return best


def _is_arithmetic(candidate: str) -> bool:
    try:
        nodes = list(ast.walk(ast.parse(candidate, mode="eval")))
    except SyntaxError:
        return False
    return all(isinstance(node, _ARITHMETIC_NODES) for node in nodes) and any(
        isinstance(node, ast.BinOp) for node in nodes
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the model will say, decided before any time passes."""

    text: str = ""  # said word by word, from the start again until ``length`` words are out
    length: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0

    def tokens(self) -> Iterable[str]:
        """The answer's tokens: each word with a space after it, but the last. An answer of
        ordinary size comes from a small cache shared by every call that gives it, so an
        open stream holds no copy of its own (a list per stream was 4 KB of 64 tokens); a
        long one is made word by word as it is said."""
        if self.length <= _SHARED_MAX_TOKENS and len(self.text) <= _SHARED_MAX_CHARS:
            return _shared_tokens(self.text, self.length)
        return _spaced(self._words(), self.length)

    def _words(self) -> Iterator[str]:
        said = 0
        while said < self.length:
            for match in _WORD.finditer(self.text):
                yield match.group()
                said += 1
                if said == self.length:
                    return


def _spaced(words: Iterator[str], length: int) -> Iterator[str]:
    for index, word in enumerate(words, start=1):
        yield word if index == length else word + " "


@functools.lru_cache(maxsize=256)
def _shared_tokens(text: str, length: int) -> tuple[str, ...]:
    words = text.split()
    return tuple(_spaced((words[i % len(words)] for i in range(length)), length))


class OfflineProvider:
    name = "offline"

    def __init__(
        self,
        *,
        model: str = "offline",
        latency_ms: int = 20,
        tokens_per_second: float = 200.0,
        response_tokens: int | None = None,
    ) -> None:
        if latency_ms < 0 or tokens_per_second < 0:
            raise ValueError("latency_ms and tokens_per_second must be >= 0")
        if response_tokens is not None and response_tokens < 1:
            raise ValueError("response_tokens must be >= 1")
        self.model = model
        self._latency = latency_ms / 1000
        self._interval = 1 / tokens_per_second if tokens_per_second > 0 else 0.0
        self._response_tokens = response_tokens

    @classmethod
    def from_settings(cls, settings: OfflineSettings) -> OfflineProvider:
        return cls(
            latency_ms=settings.LATENCY_MS,
            tokens_per_second=settings.TOKENS_PER_SECOND,
            response_tokens=settings.RESPONSE_TOKENS,
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        # The same generator as stream(), so content, usage and timing always agree.
        async with aclosing(self.stream(request)) as items:
            async for item in items:
                if isinstance(item, LLMFinal):
                    return item.response
        raise AssertionError("offline stream ended without a final item")  # pragma: no cover

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMStreamItem, None]:
        plan = self._plan(request)
        if self._latency:
            await asyncio.sleep(self._latency)
        started = time.monotonic()
        for index, token in enumerate(plan.tokens()):
            if self._interval and index:
                # An absolute schedule, so sleep overshoot does not accumulate into drift.
                delay = started + index * self._interval - time.monotonic()
                await asyncio.sleep(max(0.0, delay))
            elif index and index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            yield LLMDelta(text=token)
        completion = plan.length + sum(
            1 + count_words(json.dumps(call.arguments)) for call in plan.tool_calls
        )
        yield LLMFinal(
            response=LLMResponse(
                content="".join(plan.tokens()),
                tool_calls=plan.tool_calls,
                usage=Usage(
                    prompt_tokens=plan.prompt_tokens,
                    completion_tokens=completion,
                    total_tokens=plan.prompt_tokens + completion,
                ),
                finish_reason=plan.finish_reason,
                model=request.model or self.model,
            )
        )

    async def aclose(self) -> None:
        return None

    # --- the "model" -------------------------------------------------------------------------

    def _plan(self, request: LLMRequest) -> _Plan:
        digest = _digest(request)
        prompt = prompt_tokens(request.messages)
        messages = request.messages
        last = messages[-1] if messages else None
        if last is not None and last.role == "tool":
            return self._text_plan(_tool_result_answer(last, messages), request, prompt)
        question = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        offered = {tool.name for tool in request.tools}
        call: ToolCall | None = None
        if "calculator" in offered and (expression := find_expression(question)):
            call = ToolCall(
                id=f"call_{digest[:24]}", name="calculator", arguments={"expression": expression}
            )
        elif "current_time" in offered and _TIME_QUESTION.search(question):
            call = ToolCall(id=f"call_{digest[:24]}", name="current_time", arguments={})
        if call is not None:
            return _Plan(tool_calls=[call], finish_reason="tool_calls", prompt_tokens=prompt)
        return self._text_plan(_chat_answer(question, digest), request, prompt)

    def _text_plan(self, text: str, request: LLMRequest, prompt: int) -> _Plan:
        length = count_words(text)
        if self._response_tokens is not None:  # the text's words, over again as needed
            text = text if length else _FILLER_TEXT
            length = self._response_tokens
        finish: FinishReason = "stop"
        if request.max_tokens is not None and length > request.max_tokens:
            length = request.max_tokens
            finish = "length"
        return _Plan(text=text, length=length, finish_reason=finish, prompt_tokens=prompt)


def _digest(request: LLMRequest) -> str:
    canonical = json.dumps(
        {
            "messages": [m.model_dump(mode="json") for m in request.messages],
            "tools": [t.name for t in request.tools],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _chat_answer(question: str, digest: str) -> str:
    seed = int(digest, 16)
    opener = _OPENERS[seed % len(_OPENERS)]
    quoted = " ".join(question.split()[:12])
    echo = f'You wrote: "{quoted}".' if quoted else "You sent no question."
    length = 8 + (seed >> 8) % 17
    comment = [_FILLER[(seed >> (16 + 5 * i)) % len(_FILLER)] for i in range(length)]
    return f"{opener} {echo} {' '.join(comment).capitalize()}."


def _tool_result_answer(message: ChatMessage, messages: list[ChatMessage]) -> str:
    result = (message.content or "").strip() or "empty"
    name = message.name or _tool_name(message.tool_call_id, messages) or "tool"
    if result.lower().startswith(("error", "unknown tool")):
        return f"The {name} tool failed: {result}"
    if name == "calculator":
        return f"The result is {result}."
    if name == "current_time":
        return f"The current time is {result}."
    return f"The {name} tool returned: {result}"


def _tool_name(call_id: str | None, messages: list[ChatMessage]) -> str | None:
    for message in reversed(messages):
        for call in message.tool_calls or []:
            if call.id == call_id:
                return call.name
    return None
