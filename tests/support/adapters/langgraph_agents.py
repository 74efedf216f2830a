"""LangGraph graphs the adapter tests serve (tests/integration/test_adapter_langgraph.py).

The model is a langchain_core chat model (``BaseChatModel``, the base of langchain_core's own
fakes) that answers by rule, so every test can check what it says: it streams its answer
word by word, calls the ``add`` tool when asked to add two numbers, and reports usage (one
prompt token per word it was shown). langchain_core's ``GenericFakeChatModel`` cannot serve
here: it streams through a thread per chunk, drops tool calls when streamed, reports no usage
and does not look at the conversation.

``slow_graph`` streams from an OpenAI-compatible server over a real socket (URL in the
``LANGGRAPH_TEST_OPENAI_URL`` environment variable: tests/support/fake_openai.py) with
httpx, as a provider's chat model would; the cancel tests watch that socket close.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NotRequired

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt
from typing_extensions import TypedDict

ADDITION = re.compile(r"add (\d+) and (\d+)", re.IGNORECASE)
URL_VARIABLE = "LANGGRAPH_TEST_OPENAI_URL"


class RuleChatModel(BaseChatModel):
    """Answers from the conversation: a tool's result is read back; "add 2 and 3" calls the
    add tool (when tools are bound); anything else is echoed with the first thing the user
    said in the thread, so an answer shows what the model was shown."""

    tools_bound: bool = False

    @property
    def _llm_type(self) -> str:
        return "rule-chat-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RuleChatModel:
        return self.model_copy(update={"tools_bound": True})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._chunks(messages))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[ChatGenerationChunk]:
        prompt_tokens = sum(len(str(m.text).split()) for m in messages)
        last = messages[-1]
        asked = ADDITION.search(str(last.text)) if last.type == "human" else None
        if asked and self.tools_bound:
            arguments = json.dumps({"a": int(asked[1]), "b": int(asked[2])})
            call = {"name": "add", "args": arguments, "id": "call-add-1", "index": 0}
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[call]))
            yield _usage_chunk(prompt_tokens, 1)
            return
        words = re.findall(r"\S+\s*", reply_to(messages))
        for word in words:
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        yield _usage_chunk(prompt_tokens, len(words))


def reply_to(messages: Sequence[BaseMessage]) -> str:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"The tool says {last.text}."
    said = [str(m.text) for m in messages if m.type == "human"]
    if len(said) > 1:
        return f"You said: {said[-1]} Earlier you said: {said[0]}"
    return f"You said: {said[-1]}" if said else "Hello."


def _usage_chunk(prompt: int, completion: int) -> ChatGenerationChunk:
    usage = UsageMetadata(
        input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
    )
    return ChatGenerationChunk(
        message=AIMessageChunk(content="", usage_metadata=usage, chunk_position="last")
    )


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- a chat graph with a tool loop: tokens, tool calls, usage, sessions ---------------------
model = RuleChatModel().bind_tools([add])


async def call_model(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


_chat = StateGraph(MessagesState)
_chat.add_node("agent", call_model)
_chat.add_node("tools", ToolNode([add]))
_chat.add_edge(START, "agent")
_chat.add_conditional_edges("agent", tools_condition)
_chat.add_edge("tools", "agent")
chat_graph = _chat.compile(name="Support Bot")
keeper_saver = InMemorySaver()  # the same graph, compiled with a checkpointer of its own
keeper_graph = _chat.compile(name="keeper", checkpointer=keeper_saver)


# -- human in the loop: interrupt() twice in one node -------------------------------------
async def draft(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await RuleChatModel().ainvoke(state["messages"])]}


def review(state: MessagesState) -> dict[str, Any]:
    reply = str(state["messages"][-1].text)
    signer = interrupt("Who signs the reply?")
    approved = interrupt({"question": f"Send this reply? {reply}", "kind": "confirm"})
    text = f"Sent, signed {signer}: {reply}" if approved else "Not sent."
    return {"messages": [AIMessage(content=text)]}


_approval = StateGraph(MessagesState)
_approval.add_node("draft", draft)
_approval.add_node("review", review)
_approval.add_edge(START, "draft")
_approval.add_edge("draft", "review")
_approval.add_edge("review", END)
approval_graph = _approval.compile(name="approval-graph")


# -- a node that raises --------------------------------------------------------------------
def explode(state: MessagesState) -> dict[str, Any]:
    raise RuntimeError("the node broke")


_failing = StateGraph(MessagesState)
_failing.add_node("explode", explode)
_failing.add_edge(START, "explode")
failing_graph = _failing.compile(name="failing-graph")


# -- structured input: the graph's input schema has fields beyond messages ----------------
class BriefInput(TypedDict):
    topic: str
    words: NotRequired[int]


class BriefState(BriefInput):
    messages: list[BaseMessage]


def write_brief(state: BriefState) -> dict[str, Any]:
    words = state.get("words", 3)
    return {"messages": [AIMessage(content=f"A {words}-word brief on {state['topic']}.")]}


_brief = StateGraph(BriefState, input_schema=BriefInput)
_brief.add_node("write", write_brief)
_brief.add_edge(START, "write")
brief_graph = _brief.compile(name="brief")


# -- a subgraph that asks, in a chat graph with a field of its own (still a text input) ----
class NestedState(MessagesState):
    note: str


def take_note(state: NestedState) -> dict[str, Any]:
    return {"note": f"{len(state['messages'])} messages"}


_nested = StateGraph(NestedState)
_nested.add_node("review_flow", approval_graph)
_nested.add_node("take_note", take_note)
_nested.add_edge(START, "review_flow")
_nested.add_edge("review_flow", "take_note")
nested_graph = _nested.compile(name="nested")


# -- an unnamed graph: LangGraph names it "LangGraph" ---------------------------------------
_plain = StateGraph(MessagesState)
_plain.add_node("agent", draft)
_plain.add_edge(START, "agent")
plain_builder = _plain  # served uncompiled: the adapter compiles it
plain_graph = _plain.compile()


# -- a model streaming from an OpenAI-compatible server over a real socket ------------------
class OpenAIStreamModel(BaseChatModel):
    """Streams chat completions with httpx from the URL in LANGGRAPH_TEST_OPENAI_URL."""

    @property
    def _llm_type(self) -> str:
        return "openai-stream-test-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("this model only streams (async)")

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        body = {
            "model": "fake-model",
            "stream": True,
            "messages": [{"role": "user", "content": str(m.text)} for m in messages],
        }
        url = f"{os.environ[URL_VARIABLE]}/chat/completions"
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream("POST", url, json=body) as response,
        ):
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line.removeprefix("data: ")).get("choices") or [{}]
                text = choices[0].get("delta", {}).get("content")
                if text:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk


async def call_upstream(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await OpenAIStreamModel().ainvoke(state["messages"])]}


_slow = StateGraph(MessagesState)
_slow.add_node("upstream", call_upstream)
_slow.add_edge(START, "upstream")
slow_graph = _slow.compile(name="slow-graph")
