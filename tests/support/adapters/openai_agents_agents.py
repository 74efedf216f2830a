"""OpenAI Agents SDK agents the adapter tests serve (AGENTS=tests.support.adapters....:name).

The module-level agents name no model: the service's LLM answers them (in the tests, the
openai provider pointed at tests/support/fake_openai.py). ``own_model`` builds the same agent
with its own SDK model object pointed at a FakeOpenAI server, as a team would configure it;
``talker`` is one built at import for a server process, pointed at OPENAI_AGENTS_FAKE_URL.
"""

from __future__ import annotations

import asyncio
import os
import threading

from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, function_tool, handoff
from openai import AsyncOpenAI

# What the approval tool did, so a test can tell a refused call never ran.
DELETED: list[str] = []
# The hold tool waits for GATE, after setting HELD: a test knows where the run is.
HELD, GATE = threading.Event(), threading.Event()


@function_tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@function_tool(needs_approval=True)
def delete_file(path: str) -> str:
    """Delete the file at ``path``."""
    DELETED.append(path)
    return f"deleted {path}"


@function_tool
async def hold() -> str:
    """Wait until the test lets the run go on."""
    HELD.set()
    await asyncio.to_thread(GATE.wait, 10)
    return "released"


@function_tool(failure_error_function=None)
def explode(reason: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"exploded: {reason}")


assistant = Agent(
    name="Support Desk",
    instructions="You help with arithmetic. Use the add tool.",
    tools=[add],
)

approver = Agent(
    name="File Keeper",
    instructions="You delete files when asked, with the delete_file tool.",
    tools=[delete_file],
)

holder = Agent(name="Holder", instructions="Call hold, then answer.", tools=[hold])

failing = Agent(name="Breaker", instructions="Call explode.", tools=[explode])

billing = Agent(
    name="Billing",
    handoff_description="Answers billing questions.",
    instructions="You answer billing questions.",
)

triage = Agent(
    name="Triage",
    instructions="Hand billing questions to the billing agent.",
    handoffs=[handoff(billing)],
)

named_model = Agent(name="Named", instructions="Be brief.", model="openai/gpt-named")


def own_model(base_url: str, *, name: str = "Own Model") -> Agent[None]:
    """The assistant with its own SDK model (Chat Completions against ``base_url``)."""
    model = OpenAIChatCompletionsModel(
        model="fake-model", openai_client=AsyncOpenAI(base_url=base_url, api_key="test")
    )
    return assistant.clone(name=name, model=model, model_settings=ModelSettings(include_usage=True))


talker = own_model(os.environ.get("OPENAI_AGENTS_FAKE_URL", "http://127.0.0.1:9/v1"), name="Talker")
