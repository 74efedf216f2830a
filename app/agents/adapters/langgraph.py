"""Serve a compiled LangGraph graph (``CompiledStateGraph`` / ``Pregel``) as an agent.

``AGENTS=support=myapp.graph:graph``. Each run streams the graph (``astream``, v2 parts) and
turns it into our events (app/agents/adapters/langgraph_stream.py): the model's text deltas
are ``token`` events, tool calls and results come from the messages, each node is a step.
``interrupt()`` in a node is a question (``ctx.ask``: ``input_required``); the answer resumes
the graph with ``Command(resume=...)``. The output is the last AI message's text.

The session is the graph's thread. A graph compiled without a checkpointer gets ours, whose
thread is kept in the session's state (``ctx.state``, in Redis when the service uses it;
app/agents/adapters/langgraph_saver.py) and saved when a run completes; a stateless run
(``store: false``) keeps it only for the run, so ``interrupt()`` still works. A graph
compiled with its own checkpointer (a Postgres saver, say) keeps it: the thread id is then
the session id (for a stateless run the run id, and the thread is deleted after the run).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, suppress
from typing import Any, cast

import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.pregel import Pregel
from langgraph.types import Command

from app.agents.adapters import agent_name_from
from app.agents.adapters.langgraph_io import graph_input, input_model_for, question
from app.agents.adapters.langgraph_saver import SessionSaver
from app.agents.adapters.langgraph_stream import STREAM_MODES, GraphStream
from app.agents.context import RunContext
from app.agents.events import Event, MessageEvent
from app.agents.protocol import DEFAULT_INPUT_SCHEMA, AgentCapabilities, input_schema_for

log = structlog.get_logger(__name__)

STATE_NAME = "langgraph.thread"  # the session state entry holding the thread


def accepts(obj: Any) -> bool:
    """A compiled graph; a ``StateGraph`` builder is compiled for you."""
    return isinstance(obj, Pregel | StateGraph)


def build(obj: Any, *, name: str | None) -> LangGraphAgent:
    graph: Pregel[Any, Any, Any, Any] = obj.compile() if isinstance(obj, StateGraph) else obj
    return LangGraphAgent(graph, name=name or agent_name_from(graph.name, fallback="langgraph"))


class LangGraphAgent:
    def __init__(self, graph: Pregel[Any, Any, Any, Any], *, name: str) -> None:
        self.name = name
        nodes = [node for node in graph.nodes if not node.startswith("__")]
        self.description = f"LangGraph graph {graph.name!r} (nodes: {', '.join(nodes)})."
        self.input_model = input_model_for(graph)
        self.input_schema = (
            DEFAULT_INPUT_SCHEMA if self.input_model is None else input_schema_for(self.input_model)
        )
        self.capabilities = AgentCapabilities(
            streaming=True,
            human_input=True,  # any node may call interrupt()
            tools=any(isinstance(node.bound, ToolNode) for node in graph.nodes.values()),
        )
        self._saver: SessionSaver | None = None
        if graph.checkpointer is None:  # interrupt() and the session need a checkpointer
            delta = any(isinstance(channel, DeltaChannel) for channel in graph.channels.values())
            self._saver = SessionSaver(keep_history=delta)
            graph = graph.copy({"checkpointer": self._saver})
        self.graph = graph

    async def run(self, input: Any, ctx: RunContext) -> AsyncIterator[Event]:
        thread_id = await self._open_thread(ctx)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        stream = GraphStream(ctx)
        payload: Any = graph_input(input)
        try:
            while True:
                parts = cast(  # an async generator: closed below, not left to the GC
                    AsyncGenerator[Mapping[str, Any], None],
                    self.graph.astream(
                        payload, config, stream_mode=STREAM_MODES, subgraphs=True, version="v2"
                    ),
                )
                async with aclosing(parts):  # a cancelled run stops the graph's tasks now
                    async for part in parts:
                        for event in await stream.take(part):
                            yield event
                if not stream.interrupts:
                    break
                payload = Command(resume=await _answers(stream, ctx))
            yield MessageEvent(role="assistant", content=stream.output())
            if self._saver is not None and ctx.state is not None:
                await ctx.state.save(STATE_NAME, self._saver.export(thread_id))
        finally:
            if self._saver is not None:
                self._saver.delete_thread(thread_id)
            elif ctx.session_id is None:  # the graph's own saver: a stateless run leaves nothing
                await _forget(self.graph, thread_id)

    async def _open_thread(self, ctx: RunContext) -> str:
        """The thread id of this run, with the session's thread restored into our saver."""
        if self._saver is None:
            return ctx.session_id or ctx.run_id
        thread_id = ctx.run_id  # runs never share a thread in our saver
        snapshot = None if ctx.state is None else await ctx.state.load(STATE_NAME)
        if snapshot:
            try:
                self._saver.restore(thread_id, snapshot)
            except (ValueError, KeyError, TypeError) as exc:  # unreadable: start the thread anew
                self._saver.delete_thread(thread_id)
                log.warning("langgraph_thread_unreadable", run_id=ctx.run_id, error=str(exc))
        return thread_id


async def _forget(graph: Pregel[Any, Any, Any, Any], thread_id: str) -> None:
    checkpointer = graph.checkpointer
    if isinstance(checkpointer, BaseCheckpointSaver):
        with suppress(NotImplementedError):  # a saver that cannot delete keeps it
            await checkpointer.adelete_thread(thread_id)


async def _answers(stream: GraphStream, ctx: RunContext) -> dict[str, Any]:
    """Ask each pending interrupt in turn; the resume values by interrupt id."""
    answers: dict[str, Any] = {}
    for interrupt in stream.interrupts:
        prompt, kind, choices = question(interrupt)
        answers[interrupt.id] = await ctx.ask(prompt, kind=kind, choices=choices)
    stream.interrupts.clear()
    return answers
