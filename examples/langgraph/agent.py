"""A support graph written with LangGraph, served by agent-service without changing it.

    AGENTS=support=examples.langgraph.agent:graph make run

``draft`` has the model write a reply (streamed as ``token`` events); ``approve`` stops at
``interrupt()`` until a person confirms (an ``input_required`` event of kind ``confirm``) and
sends the reply or not. The graph has no checkpointer: the service gives it one that keeps
each session's thread with the session.

The model is OpenAI's (``pip install langchain-openai``, ``OPENAI_API_KEY``, optionally
``OPENAI_MODEL``); without them a canned reply from langchain_core's fake chat model, so the
example runs offline.
"""

from __future__ import annotations

import importlib
import itertools
import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

INSTRUCTIONS = "You are a support agent for an online shop. Draft a short, friendly reply."
CANNED = "Thanks for writing in! Your order is on its way and should arrive within two days."


def _model() -> BaseChatModel:
    if os.environ.get("OPENAI_API_KEY"):
        try:
            openai = importlib.import_module("langchain_openai")  # an optional extra
        except ImportError:
            pass
        else:
            chat: BaseChatModel = openai.ChatOpenAI(
                model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
            )
            return chat
    return GenericFakeChatModel(messages=itertools.cycle([CANNED]))


model = _model()


async def draft(state: MessagesState) -> dict[str, Any]:
    reply = await model.ainvoke([SystemMessage(INSTRUCTIONS), *state["messages"]])
    return {"messages": [reply]}


def approve(state: MessagesState) -> dict[str, Any]:
    reply = str(state["messages"][-1].text)
    if interrupt({"question": f"Send this reply? {reply}", "kind": "confirm"}):
        return {"messages": [AIMessage(f"Sent: {reply}")]}
    return {"messages": [AIMessage("The reply was not sent.")]}


builder = StateGraph(MessagesState)
builder.add_node("draft", draft)
builder.add_node("approve", approve)
builder.add_edge(START, "draft")
builder.add_edge("draft", "approve")
builder.add_edge("approve", END)
graph = builder.compile(name="support")
