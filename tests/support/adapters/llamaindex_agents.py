"""LlamaIndex workflows the adapter tests serve (AGENTS=tests.support.adapters.llamaindex_agents:
<attr>), built with the framework's own parts and a scripted model: no network, except
UpstreamFlow, which streams from the OpenAI-compatible server at OPENAI_BASE_URL (a FakeOpenAI
in the tests) as a team's own step would.
"""

# No ``from __future__ import annotations``: FunctionTool finds a tool's ``ctx: Context``
# parameter by comparing the annotation object, which a string is not.
import json
import os
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from workflows import Context, Workflow, step
from workflows.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent

PROMPT_TOKENS_PER_MESSAGE = 10
TOOL_CALL_TOKENS = 3


class ScriptedLLM(MockFunctionCallingLLM):
    """A function-calling model answering by rule, streamed word by word:

    - after a tool result: "The tool said <result>."
    - "add A and B" with an ``add`` tool offered: calls add(a=A, b=B);
      "deploy X" with ``confirm_deploy`` offered: calls confirm_deploy(service=X)
    - else "You said: <message>." and, when the conversation had earlier user messages,
      " Before that: <them, joined by '; '>."; ``reply_words``: that many words instead.

    Its last chunk reports usage as OpenAI's does (``raw["usage"]``): 10 prompt tokens per
    message sent, one completion token per streamed chunk (3 for a tool call).
    """

    reply_words: int | None = None

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        prompt_tokens = PROMPT_TOKENS_PER_MESSAGE * len(messages)
        call = _tool_call(messages, kwargs.get("tools") or [])
        if call is not None:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": TOOL_CALL_TOKENS}
            reply = ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
            return _one(ChatResponse(message=reply, delta="", raw={"usage": usage}))
        chunks = re.findall(r"\S+\s*", self._reply(messages))
        return _stream(chunks, prompt_tokens)

    def _reply(self, messages: Sequence[ChatMessage]) -> str:
        if self.reply_words is not None:
            return " ".join(f"w{n}" for n in range(self.reply_words))
        last = messages[-1]
        if last.role == MessageRole.TOOL:
            return f"The tool said {last.content}."
        earlier = [m.content or "" for m in messages[:-1] if m.role == MessageRole.USER]
        before = f" Before that: {'; '.join(earlier)}." if earlier else ""
        return f"You said: {last.content}.{before}"


def _tool_call(messages: Sequence[ChatMessage], tools: Sequence[Any]) -> ToolCallBlock | None:
    last = messages[-1]
    offered = {tool.metadata.name for tool in tools}
    if last.role != MessageRole.USER:
        return None
    text, call_id = last.content or "", f"call-{len(messages)}"
    if "add" in offered and (found := re.search(r"add (-?\d+) and (-?\d+)", text)):
        numbers = {"a": int(found[1]), "b": int(found[2])}
        return ToolCallBlock(tool_call_id=call_id, tool_name="add", tool_kwargs=numbers)
    if "confirm_deploy" in offered and (found := re.search(r"deploy (\w+)", text)):
        service = {"service": found[1]}
        return ToolCallBlock(tool_call_id=call_id, tool_name="confirm_deploy", tool_kwargs=service)
    return None


async def _one(response: ChatResponse) -> AsyncGenerator[ChatResponse, None]:
    yield response


async def _stream(chunks: list[str], prompt_tokens: int) -> AsyncGenerator[ChatResponse, None]:
    text = ""
    for number, chunk in enumerate(chunks, start=1):
        text += chunk
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(chunks)}
        yield ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
            delta=chunk,
            raw={"usage": usage} if number == len(chunks) else None,
        )


# --- agent workflows ------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def confirm_deploy(ctx: Context, service: str) -> str:
    """Deploy a service once a human says yes."""
    answer = await ctx.wait_for_event(
        HumanResponseEvent,
        waiter_event=InputRequiredEvent(prefix=f"Deploy {service}? (yes/no)"),
        waiter_id=f"deploy-{service}",
    )
    approved = str(answer.response).strip().lower() == "yes"
    return f"deployed {service}" if approved else f"kept {service} as it was"


calculator = FunctionAgent(
    name="calculator",
    description="Adds numbers with its add tool.",
    tools=[add],
    llm=ScriptedLLM(),
    system_prompt="You add numbers.",
)
deployer = FunctionAgent(
    name="deployer",
    description="Deploys a service after a human confirms.",
    tools=[confirm_deploy],
    llm=ScriptedLLM(),
)


# --- plain workflows ------------------------------------------------------------------------


class TextDelta(Event):
    delta: str


class Progress(Event):
    message: str


class NotesFlow(Workflow):
    """Keeps a session's notes in the workflow's own store.

    Each run adds its input and streams all the notes so far."""

    @step
    async def take_note(self, ctx: Context, ev: StartEvent) -> StopEvent:
        notes = [*await ctx.store.get("notes", default=[]), str(ev.input)]
        ctx.write_event_to_stream(Progress(message=f"{len(notes) - 1} notes loaded"))
        await ctx.store.set("notes", notes)
        text = f"Notes: {'; '.join(notes)}."
        for word in re.findall(r"\S+\s*", text):
            ctx.write_event_to_stream(TextDelta(delta=word))
        return StopEvent(result=text)


class ApprovalFlow(Workflow):
    """Asks a human before it acts."""

    @step
    async def propose(self, ev: StartEvent) -> InputRequiredEvent:
        return InputRequiredEvent(prefix=f"Approve {ev.input}? (yes/no)", action=str(ev.input))

    @step
    async def act(self, ev: HumanResponseEvent) -> StopEvent:
        approved = str(ev.response).strip().lower() == "yes"
        # ``action`` comes back on the answer: the adapter echoes the request's fields.
        return StopEvent(result=f"{'Approved' if approved else 'Declined'}: {ev.get('action')}")


class BrokenFlow(Workflow):
    @step
    async def fail(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(TextDelta(delta="Starting "))
        raise RuntimeError("the step broke")


class UpstreamFlow(Workflow):
    """Streams a model's answer from the OpenAI-compatible server at OPENAI_BASE_URL."""

    @step
    async def relay(self, ctx: Context, ev: StartEvent) -> StopEvent:
        body = {
            "model": "fake",
            "stream": True,
            "messages": [{"role": "user", "content": ev.input}],
        }
        text = ""
        async with httpx.AsyncClient(base_url=os.environ["OPENAI_BASE_URL"], timeout=30) as http:
            async with http.stream("POST", "/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    choices = json.loads(line.removeprefix("data: "))["choices"]
                    delta = choices[0]["delta"].get("content") if choices else None
                    if delta:
                        text += delta
                        ctx.write_event_to_stream(TextDelta(delta=delta))
        return StopEvent(result=text)


notes = NotesFlow()
approval = ApprovalFlow(timeout=None)  # waits for a human: no workflow timeout
broken = BrokenFlow()
upstream = UpstreamFlow(timeout=None)
