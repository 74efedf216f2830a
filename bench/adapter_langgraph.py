"""What serving a LangGraph graph through agent-service costs over the framework's own loop.

Run with ``python -m bench.adapter_langgraph`` (about 25 s). One process, uvloop, the same
graph for every case: one node calling a chat model (langchain_core ``BaseChatModel``) that
streams a 64-token answer with no latency, compiled without a checkpointer as a user ships it.

- framework: the framework's own streaming loop driven directly:
  ``graph.astream(input, stream_mode="messages")``, counting the text deltas.
- framework_saver: the same with an ``InMemorySaver`` and a fresh thread per run (what a
  graph that keeps sessions or calls ``interrupt()`` runs); our adapter always has one.
- adapter_direct: the adapter's ``run()`` iterated directly with a stand-in context (no run,
  journal or feed): what the adapter's own translation costs over framework_saver.
- run_service: the graph through our run machinery with the adapter: a run started with the
  app's RunService (``store: false``: the adapter's per-run thread, nothing saved), its
  events read to the end as invoke does (journal, usage, steps, record), no HTTP.
- asgi_stream: ``POST /v1/agents/bench/stream`` (``store: false``) through the whole app in
  process (every middleware, JWT auth, SSE encoding), as bench/agent_microbench.py drives it.

Per case and round: RUNS runs one after another, wall time (tokens/s) and this process's CPU
(time.process_time, us per token); rounds alternate the order of the cases; medians over the
rounds. "adapter layer cost" = run_service / framework - 1 (CPU per token); also against
framework_saver, and the ASGI figure (the whole request path on top). Knobs:
ADAPTER_BENCH_RUNS (60), ADAPTER_BENCH_ROUNDS (5). Writes bench/results/adapter_langgraph.json.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from asgi_lifespan import LifespanManager
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from bench.adapter_harness import TOKENS, alternate_rounds, run_quietly
from bench.agent_microbench import _settings, _token, call
from bench.middleware_overhead import ROOT, _git, machine_info

OUT = ROOT / "bench" / "results" / "adapter_langgraph.json"
CHUNKS = [f"w{index} " for index in range(TOKENS)]
PROMPT = "Describe the sea in one sentence."
BODY = json.dumps({"input": PROMPT, "store": False}).encode()


class StreamingModel(BaseChatModel):
    """Streams CHUNKS natively (async), no latency."""

    @property
    def _llm_type(self) -> str:
        return "bench-streaming-model"

    def _chunks(self) -> Iterator[ChatGenerationChunk]:
        for text in CHUNKS:
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._chunks())

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


model = StreamingModel()


async def answer(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


_builder = StateGraph(MessagesState)
_builder.add_node("answer", answer)
_builder.add_edge(START, "answer")
bench_graph = _builder.compile(name="bench")
saver_graph = _builder.compile(name="bench", checkpointer=InMemorySaver())


def _framework_run(graph: Any, *, threads: bool) -> Callable[[], Awaitable[int]]:
    async def run_once() -> int:
        config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}} if threads else None
        tokens = 0
        inputs = {"messages": [HumanMessage(PROMPT)]}
        async for message, _ in graph.astream(inputs, config, stream_mode="messages"):
            tokens += isinstance(message, AIMessage) and bool(message.text)
        if threads:
            await graph.checkpointer.adelete_thread(config["configurable"]["thread_id"])
        return tokens

    return run_once


class _DirectContext:
    """What the adapter's run() uses of a RunContext, doing nothing (no run around it)."""

    def __init__(self) -> None:
        self.run_id, self.session_id, self.state, self.steps = uuid.uuid4().hex, None, None, 0

    async def checkpoint(self) -> None:
        return None

    def begin_step(self) -> int:
        self.steps += 1
        return self.steps

    def add_usage(self, usage: Any, *, cached: bool = False) -> None:
        return None


def _adapter_run() -> Callable[[], Awaitable[int]]:
    from app.agents.adapters.langgraph import build

    agent = build(bench_graph, name="bench")

    async def run_once() -> int:
        tokens = 0
        async for event in agent.run(PROMPT, _DirectContext()):  # type: ignore[arg-type]
            tokens += event.type == "token"
        return tokens

    return run_once


def _service_run(services: Any) -> Callable[[], Awaitable[int]]:
    from app.agents.run_request import RunRequest
    from app.security.principals import Principal

    principal = Principal.for_user("bench", scopes=["agents:run"])

    async def run_once() -> int:
        request = RunRequest(agent="bench", input=PROMPT, principal=principal, store=False)
        run = await services.runs.start(request)
        tokens = 0
        async for event in run.events():
            tokens += event.type == "token"
            if event.type == "error":
                raise RuntimeError(f"run failed: {event}")
        return tokens

    return run_once


def _asgi_run(app: Any, auth: list[tuple[bytes, bytes]]) -> Callable[[], Awaitable[int]]:
    async def run_once() -> int:
        status, _, body = await call(app, "/v1/agents/bench/stream", auth, BODY)
        if status != 200 or b"event: run_completed" not in body:
            raise RuntimeError(f"stream answered {status}: {body[-300:]!r}")
        return int(body.count(b"event: token\n"))

    return run_once


async def _bench(runs: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    from app.main import create_app
    from app.services import build_services

    password = secrets.token_urlsafe(18)
    settings = _settings(password, TOKENS).model_copy(
        update={"AGENTS": ["bench=bench.adapter_langgraph:bench_graph"]}
    )
    services = build_services(settings)
    async with LifespanManager(create_app(settings, services=services)) as manager:
        auth = await _token(manager.app, password)
        cases = {
            "framework": _framework_run(bench_graph, threads=False),
            "framework_saver": _framework_run(saver_graph, threads=True),
            "adapter_direct": _adapter_run(),
            "run_service": _service_run(services),
            "asgi_stream": _asgi_run(manager.app, auth),
        }
        return await alternate_rounds(cases, runs=runs, rounds=rounds)


def summarise(measured: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    med = {
        name: {key: statistics.median(values) for key, values in figures.items()}
        for name, figures in measured.items()
    }
    figures: dict[str, float] = {}
    for name, values in med.items():
        figures[f"{name}_tokens_per_s"] = values["tokens_per_s"]
        figures[f"{name}_cpu_us_per_token"] = values["cpu_us_per_token"]
    ours = med["run_service"]["cpu_us_per_token"]
    figures["adapter_layer_cost"] = ours / med["framework"]["cpu_us_per_token"] - 1
    saver = med["framework_saver"]["cpu_us_per_token"]
    figures["adapter_layer_cost_vs_saver"] = ours / saver - 1
    figures["adapter_translation_cost"] = med["adapter_direct"]["cpu_us_per_token"] / saver - 1
    figures["asgi_stream_cost"] = (
        med["asgi_stream"]["cpu_us_per_token"] / med["framework"]["cpu_us_per_token"] - 1
    )
    figures["adapter_layer_cost_wall"] = (
        med["framework"]["tokens_per_s"] / med["run_service"]["tokens_per_s"] - 1
    )
    return {key: round(value, 3) for key, value in figures.items()}


def main() -> int:
    runs = int(os.environ.get("ADAPTER_BENCH_RUNS", "60"))
    rounds = int(os.environ.get("ADAPTER_BENCH_ROUNDS", "5"))
    started = datetime.now(UTC)
    measured = run_quietly(lambda: _bench(runs, rounds))
    if measured is None:
        return 1
    figures = summarise(measured)
    result = {
        "benchmark": "adapter_langgraph",
        "issue": "12 (serve framework agents behind the same contract)",
        "command": "python -m bench.adapter_langgraph",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "app_dirty": bool(_git("status", "--porcelain", "--", "app")),
        "machine": machine_info(),
        "method": "one process on uvloop; per case and round, runs in a row: wall time "
        "(tokens/s) and process CPU per token; rounds alternate the order; medians. framework: "
        'graph.astream(stream_mode="messages") driven directly, no checkpointer; '
        "framework_saver: the same with an InMemorySaver, a fresh thread per run; adapter_direct: "
        "the adapter's run() iterated with a stand-in context, no run machinery; run_service: "
        "RunService.start + run.events() (store false); asgi_stream: POST "
        "/v1/agents/bench/stream in process (store false). adapter_layer_cost = run_service / "
        "framework - 1 (CPU per token).",
        "config": {"tokens": TOKENS, "runs_per_round": runs, "rounds": rounds},
        "figures": figures,
        "measured": measured,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| figure (median of rounds) | value |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value} |")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
