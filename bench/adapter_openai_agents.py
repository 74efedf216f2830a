"""What serving an OpenAI Agents SDK agent through agent-service costs over the SDK's own loop.

Run with ``python -m bench.adapter_openai_agents`` (about 25 s). One process, uvloop, the
same agent for the first four cases: an ``agents.Agent`` whose SDK ``Model`` streams a
64-token answer with no latency and no socket (chat-completion chunks made in process and
turned into Responses events by the SDK's own chunk handler, as its Chat Completions model
does with the network's).

- framework: the SDK's own streaming loop driven directly, ``Runner.run_streamed`` (tracing
  off) with ``stream_events()`` read to the end, counting the text deltas.
- adapter_direct: the adapter's ``run`` driven directly, in this task, with a RunContext whose
  publish only counts the token events: what the adapter adds, without the run machinery.
- run_service: the same agent through our run machinery with the adapter: a run started with
  the app's RunService (``store: false``), its events read to the end as invoke does (journal,
  usage, steps, record), no HTTP.
- asgi_stream: ``POST /v1/agents/bench/stream`` (``store: false``) through the whole app in
  process (every middleware, JWT auth, SSE encoding), as bench/agent_microbench.py drives it.
- routed_service (for information): an Agent that names no model, so each call goes through
  the service's LLM (the offline model, 64 tokens, no latency; answered from the response
  cache after the first run) and back into SDK events; run like run_service.

Per case and round: RUNS runs one after another, wall time (tokens/s) and this process's CPU
(time.process_time, us per token); rounds alternate the order of the cases; medians over the
rounds. "adapter layer cost" = run_service / framework - 1 (CPU per token); adapter_only_cost
= adapter_direct / framework - 1; the ASGI figure is the whole request path on top.
Knobs: ADAPTER_BENCH_RUNS (100), ADAPTER_BENCH_ROUNDS (7). Writes
bench/results/adapter_openai_agents.json.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from agents import Agent, Model, ModelResponse, RunConfig, Runner
from agents.models.chatcmpl_stream_handler import ChatCmplStreamHandler
from agents.models.fake_id import FAKE_RESPONSES_ID
from asgi_lifespan import LifespanManager
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import Response, ResponseTextDeltaEvent

from bench.adapter_harness import TOKENS, alternate_rounds, run_quietly
from bench.agent_microbench import _settings, _token, call
from bench.middleware_overhead import ROOT, _git, machine_info

OUT = ROOT / "bench" / "results" / "adapter_openai_agents.json"
CHUNKS = [f"w{index} " for index in range(TOKENS)]
PROMPT = "Describe the sea in one sentence."
BODY = json.dumps({"input": PROMPT, "store": False}).encode()


def _chunk(**fields: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="bench", created=0, model="bench", object="chat.completion.chunk", **fields
    )


async def _chunks() -> AsyncIterator[ChatCompletionChunk]:
    for text in CHUNKS:
        yield _chunk(choices=[Choice(index=0, delta=ChoiceDelta(content=text))])
    usage = CompletionUsage(prompt_tokens=12, completion_tokens=TOKENS, total_tokens=12 + TOKENS)
    yield _chunk(choices=[], usage=usage)


class FakeStreamModel(Model):
    """64 text deltas, no latency: the SDK's Chat Completions model without the network."""

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise NotImplementedError("the bench streams")

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        started = Response(
            id=FAKE_RESPONSES_ID,
            created_at=time.time(),
            model="bench",
            object="response",
            output=[],
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
        )
        async for event in ChatCmplStreamHandler.handle_stream(started, cast(Any, _chunks())):
            yield event


bench_agent = Agent(name="bench", instructions="Answer briefly.", model=FakeStreamModel())
routed_agent = Agent(name="routed", instructions="Answer briefly.")


async def framework_run() -> int:
    result = Runner.run_streamed(bench_agent, PROMPT, run_config=RunConfig(tracing_disabled=True))
    tokens = 0
    async for event in result.stream_events():
        if (
            event.type == "raw_response_event"
            and isinstance(event.data, ResponseTextDeltaEvent)
            and event.data.delta
        ):
            tokens += 1
    return tokens


def _adapter_run(services: Any) -> Callable[[], Awaitable[int]]:
    from app.agents.context import RunContext
    from app.agents.control import RunControl
    from app.agents.run_llm import RunLLM

    agent = services.agents.require("bench")

    async def run_once() -> int:
        tokens = 0

        async def publish(event: Any) -> None:
            nonlocal tokens
            tokens += event.type == "token"

        ctx = RunContext(
            run_id="bench",
            agent="bench",
            principal_id="user:bench",
            session_id=None,
            history=[],
            llm=RunLLM(services.llm),
            tools=services.tools,
            max_steps=10,
            deadline=time.monotonic() + 60,
            input_timeout=60,
            params={},
            control=RunControl(),
            publish=publish,
        )
        async for event in agent.run(PROMPT, ctx):
            await publish(event)
        return tokens

    return run_once


def _service_run(services: Any, agent: str) -> Callable[[], Awaitable[int]]:
    from app.agents.run_request import RunRequest
    from app.security.principals import Principal

    principal = Principal.for_user("bench", scopes=["agents:run"])

    async def run_once() -> int:
        request = RunRequest(agent=agent, input=PROMPT, principal=principal, store=False)
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
    entries = [
        "bench=bench.adapter_openai_agents:bench_agent",
        "routed=bench.adapter_openai_agents:routed_agent",
    ]
    settings = _settings(password, TOKENS).model_copy(update={"AGENTS": entries})
    services = build_services(settings)
    async with LifespanManager(create_app(settings, services=services)) as manager:
        auth = await _token(manager.app, password)
        cases = {
            "framework": framework_run,
            "adapter_direct": _adapter_run(services),
            "run_service": _service_run(services, "bench"),
            "asgi_stream": _asgi_run(manager.app, auth),
            "routed_service": _service_run(services, "routed"),
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
    base = med["framework"]["cpu_us_per_token"]
    figures["adapter_layer_cost"] = med["run_service"]["cpu_us_per_token"] / base - 1
    figures["adapter_only_cost"] = med["adapter_direct"]["cpu_us_per_token"] / base - 1
    figures["asgi_stream_cost"] = med["asgi_stream"]["cpu_us_per_token"] / base - 1
    figures["routed_service_cost"] = med["routed_service"]["cpu_us_per_token"] / base - 1
    figures["adapter_layer_cost_wall"] = (
        med["framework"]["tokens_per_s"] / med["run_service"]["tokens_per_s"] - 1
    )
    return {key: round(value, 3) for key, value in figures.items()}


def main() -> int:
    runs = int(os.environ.get("ADAPTER_BENCH_RUNS", "100"))
    rounds = int(os.environ.get("ADAPTER_BENCH_ROUNDS", "7"))
    started = datetime.now(UTC)
    measured = run_quietly(lambda: _bench(runs, rounds))
    if measured is None:
        return 1
    figures = summarise(measured)
    result = {
        "benchmark": "adapter_openai_agents",
        "issue": "12 (serve framework agents behind the same contract)",
        "command": "python -m bench.adapter_openai_agents",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "app_dirty": bool(_git("status", "--porcelain", "--", "app")),
        "machine": machine_info(),
        "method": "one process on uvloop; per case and round, runs in a row: wall time "
        "(tokens/s) and process CPU per token; rounds alternate the order; medians. framework: "
        "Runner.run_streamed + stream_events() driven directly (tracing off), the Agent's own "
        "SDK Model streaming 64 deltas in process; adapter_direct: the adapter's run() in this "
        "task, publish counting tokens; run_service: RunService.start + run.events() (store "
        "false); asgi_stream: POST /v1/agents/bench/stream in process (store false); "
        "routed_service: an Agent naming no model, its calls through the service's LLM (offline "
        "model, 64 tokens, cached after the first run), run like run_service. "
        "adapter_layer_cost = run_service / framework - 1 (CPU per token); adapter_only_cost = "
        "adapter_direct / framework - 1.",
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
