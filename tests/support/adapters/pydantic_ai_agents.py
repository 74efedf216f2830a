"""Pydantic AI agents the adapter tests serve, on the framework's own test models.

Each FunctionModel streams what a real model would (text deltas, tool calls with their
arguments split across chunks) and decides from the messages the framework hands it, so
what the tests see is what the framework ran.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from pydantic_ai import (
    Agent,
    CallDeferred,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers.openai import OpenAIProvider

Streamed = AsyncIterator[str | DeltaToolCalls]


def _returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    """The tool results the framework just sent back (the last request's)."""
    last = messages[-1]
    if not isinstance(last, ModelRequest):
        return []
    return [part for part in last.parts if isinstance(part, ToolReturnPart)]


def _prompt(messages: list[ModelMessage]) -> str:
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    return next(str(p.content) for p in last.parts if isinstance(p, UserPromptPart))


def _call(name: str, call_id: str, *pieces: str) -> list[DeltaToolCalls]:
    """A tool call as a model streams it: the name, then the JSON arguments in pieces."""
    first = {0: DeltaToolCall(name=name, json_args=pieces[0], tool_call_id=call_id)}
    return [first, *({0: DeltaToolCall(json_args=piece)} for piece in pieces[1:])]


# -- writer: streamed text, named "Writer Bot" (served as writer-bot) ----------------------
WRITER_CHUNKS = ["Pydantic", " AI", " streams", " these", " words", " in", " order."]


async def _write(messages: list[ModelMessage], info: AgentInfo) -> Streamed:
    for chunk in WRITER_CHUNKS:
        yield chunk


writer = Agent(
    FunctionModel(stream_function=_write),
    name="Writer Bot",
    description="Writes one sentence, streamed word by word.",
)

# An agent without a name: served as "pydantic-ai" unless the entry names it.
unnamed = Agent(TestModel(custom_output_text="unnamed answer"))


# -- weather: one tool call, then an answer made of its result -----------------------------
async def _forecaster(messages: list[ModelMessage], info: AgentInfo) -> Streamed:
    returns = _returns(messages)
    if returns:
        yield f"Forecast: {returns[0].model_response_str()}."
        return
    for delta in _call("forecast", "call-forecast-1", '{"city": ', '"Paris", "days": ', "2}"):
        yield delta


weather = Agent(FunctionModel(stream_function=_forecaster), name="weather")


@weather.tool_plain
def forecast(city: str, days: int) -> str:
    """The forecast for a city."""
    return f"sunny in {city} for {days} days"


# -- deployer: a tool that needs a human's approval ----------------------------------------
async def _deploy_planner(messages: list[ModelMessage], info: AgentInfo) -> Streamed:
    returns = _returns(messages)
    if returns:
        yield f"Result: {returns[0].model_response_str()}"
        return
    service = _prompt(messages).split()[-1]
    for delta in _call("deploy", "call-deploy-1", f'{{"service": "{service}"}}'):
        yield delta


deployer = Agent(FunctionModel(stream_function=_deploy_planner), name="deployer")


@deployer.tool_plain(requires_approval=True)
def deploy(service: str) -> str:
    """Deploy a service (only once a human approved)."""
    return f"{service} deployed"


# -- escalator: a tool whose result comes from outside the run ------------------------------
async def _escalator(messages: list[ModelMessage], info: AgentInfo) -> Streamed:
    returns = _returns(messages)
    if returns:
        yield f"The manager said: {returns[0].model_response_str()}"
        return
    for delta in _call("ask_manager", "call-manager-1", '{"question": "Ship on Friday?"}'):
        yield delta


escalator = Agent(FunctionModel(stream_function=_escalator), name="escalator")


@escalator.tool_plain
def ask_manager(question: str) -> str:
    """A question only the manager can answer: its answer comes from outside the run."""
    raise CallDeferred()


# -- notes: remembers through its own message history (tool calls included) ---------------
async def _note_taker(messages: list[ModelMessage], info: AgentInfo) -> Streamed:
    if _returns(messages):
        yield "Noted."
        return
    prompt = _prompt(messages)
    if prompt.startswith("remember "):
        for delta in _call("remember", f"call-note-{len(messages)}", f'{{"note": "{prompt[9:]}"}}'):
            yield delta
        return
    # What the framework kept: the notes are only in earlier tool calls' arguments.
    notes = [
        str(part.args_as_dict()["note"])
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart) and part.tool_name == "remember"
    ]
    earlier = sum(
        isinstance(part, UserPromptPart)
        for message in messages[:-1]
        if isinstance(message, ModelRequest)
        for part in message.parts
    )
    yield f"Notes: {', '.join(notes) or 'none'}; earlier turns: {earlier}"


notes = Agent(FunctionModel(stream_function=_note_taker), name="notes")


@notes.tool_plain
def remember(note: str) -> str:
    """Keep a note."""
    return "kept"


# -- broken: its tool raises ----------------------------------------------------------------
async def _breaker(messages: list[ModelMessage], info: AgentInfo) -> Streamed:
    for delta in _call("explode", "call-explode-1", '{"reason": "test"}'):
        yield delta


broken = Agent(FunctionModel(stream_function=_breaker), name="broken")


@broken.tool_plain
def explode(reason: str) -> str:
    """Fails, as a tool with a bug does."""
    raise RuntimeError(f"exploded: {reason}")


# -- talker: the framework's OpenAI chat model, against tests/support/fake_openai.py -------
def talker_for(base_url: str) -> Agent[None, str]:
    provider = OpenAIProvider(base_url=base_url, api_key="test")
    return Agent(OpenAIChatModel("fake-model", provider=provider), name="talker")


# For a server process: the fake's URL comes in the environment.
talker = talker_for(os.environ.get("PYDANTIC_AI_FAKE_OPENAI_URL", "http://127.0.0.1:9/v1"))


# -- service: no model of its own, so it runs on the service's LLM (ctx.llm) ---------------
service_llm = Agent(name="service-llm", instructions="Answer briefly.")


@service_llm.tool_plain
def calculator(expression: str) -> str:
    """Add the integers of a sum such as 2 + 3 (the offline LLM calls a tool of this name)."""
    return str(sum(int(term) for term in expression.split("+")))
