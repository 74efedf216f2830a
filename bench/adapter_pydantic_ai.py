"""What serving a Pydantic AI agent through agent-service costs over the framework's own loop.

Run with ``python -m bench.adapter_pydantic_ai`` (about 20 s). One process, uvloop, the same
agent for every case: a FunctionModel streaming a 64-token answer with no latency.

- framework: the framework's own streaming loop driven directly, ``agent.iter()`` with every
  model-request and tool-call node streamed (``node.stream``), counting the text deltas:
  what the adapter itself drives.
- adapter_direct: the adapter's ``run`` driven directly, in this task, with a RunContext whose
  publish only counts the token events: what the adapter adds, without the run machinery.
- run_service: the same agent through our run machinery with the adapter: a run started with
  the app's RunService (``store: false``), its events read to the end as invoke does (journal,
  usage, steps, record), no HTTP.
- asgi_stream: ``POST /v1/agents/bench/stream`` (``store: false``) through the whole app
  in process (every middleware, JWT auth, SSE encoding), as bench/agent_microbench.py drives it.

Per case and round: RUNS runs one after another, wall time (tokens/s) and this process's CPU
(time.process_time, us per token); rounds alternate the order of the cases; medians over the
rounds. "adapter layer cost" = run_service / framework - 1 (CPU per token); adapter_only_cost
= adapter_direct / framework - 1; the ASGI figure is the whole request path on top.
Knobs: ADAPTER_BENCH_RUNS (50), ADAPTER_BENCH_ROUNDS (7). Writes
bench/results/adapter_pydantic_ai.json.
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
from typing import Any

from asgi_lifespan import LifespanManager
from pydantic_ai import Agent, PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta
from pydantic_ai.models.function import AgentInfo, FunctionModel

from bench.adapter_harness import TOKENS, alternate_rounds, run_quietly
from bench.agent_microbench import _settings, _token, call
from bench.middleware_overhead import ROOT, _git, machine_info

OUT = ROOT / "bench" / "results" / "adapter_pydantic_ai.json"
CHUNKS = [f"w{index} " for index in range(TOKENS)]
PROMPT = "Describe the sea in one sentence."
BODY = json.dumps({"input": PROMPT, "store": False}).encode()


async def _answer(messages: list[Any], info: AgentInfo) -> AsyncIterator[str]:
    for chunk in CHUNKS:
        yield chunk


bench_agent = Agent(FunctionModel(stream_function=_answer), name="bench")


async def framework_run() -> int:
    tokens = 0
    async with bench_agent.iter(PROMPT, infer_name=False) as run:
        async for node in run:
            if Agent.is_model_request_node(node) or Agent.is_call_tools_node(node):
                async with node.stream(run.ctx) as stream:
                    async for event in stream:
                        if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                            tokens += 1
                        elif isinstance(event, PartDeltaEvent) and isinstance(
                            event.delta, TextPartDelta
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
        update={"AGENTS": ["bench=bench.adapter_pydantic_ai:bench_agent"]}
    )
    services = build_services(settings)
    async with LifespanManager(create_app(settings, services=services)) as manager:
        auth = await _token(manager.app, password)
        cases = {
            "framework": framework_run,
            "adapter_direct": _adapter_run(services),
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
    base = med["framework"]["cpu_us_per_token"]
    figures["adapter_layer_cost"] = med["run_service"]["cpu_us_per_token"] / base - 1
    figures["adapter_only_cost"] = med["adapter_direct"]["cpu_us_per_token"] / base - 1
    figures["asgi_stream_cost"] = med["asgi_stream"]["cpu_us_per_token"] / base - 1
    figures["adapter_layer_cost_wall"] = (
        med["framework"]["tokens_per_s"] / med["run_service"]["tokens_per_s"] - 1
    )
    return {key: round(value, 3) for key, value in figures.items()}


def main() -> int:
    runs = int(os.environ.get("ADAPTER_BENCH_RUNS", "50"))
    rounds = int(os.environ.get("ADAPTER_BENCH_ROUNDS", "7"))
    started = datetime.now(UTC)
    measured = run_quietly(lambda: _bench(runs, rounds))
    if measured is None:
        return 1
    figures = summarise(measured)
    result = {
        "benchmark": "adapter_pydantic_ai",
        "issue": "12 (serve framework agents behind the same contract)",
        "command": "python -m bench.adapter_pydantic_ai",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "app_dirty": bool(_git("status", "--porcelain", "--", "app")),
        "machine": machine_info(),
        "method": "one process on uvloop; per case and round, runs in a row: wall time "
        "(tokens/s) and process CPU per token; rounds alternate the order; medians. framework: "
        "agent.iter + node.stream driven directly; run_service: RunService.start + run.events() "
        "(store false); adapter_direct: the adapter's run() in this task, publish counting tokens; "
        "asgi_stream: POST /v1/agents/bench/stream in process (store false). "
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
