"""What serving a LlamaIndex workflow through agent-service costs over the framework's own loop.

Run with ``python -m bench.adapter_llamaindex`` (about 25 s). One process, uvloop, no sockets.
The same agent workflow, a ``FunctionAgent`` on the tests' scripted model answering 64 words
as 64 streamed chunks with no latency (tests/support/adapters/llamaindex_agents.py), is run
one run at a time four ways:

- framework: ``agent.run(user_msg=...)``, iterating ``handler.stream_events()`` and counting
  the ``AgentStream`` deltas, then awaiting the result: the framework's own streaming loop.
- adapter: the adapter's ``run(input, ctx)`` iterated directly, its events going nowhere
  (a RunContext whose publish does nothing): what the adapter alone adds.
- run_service: ``RunService.start`` (``store=False``) and the run's events read to the end:
  the adapter inside our run machinery (stamping, run log, feed), no HTTP.
- service: ``POST /v1/agents/bench/stream`` (``"store": false``) through the full ASGI app in
  process (bench/agent_microbench.py's caller and settings: JWT, rate limit, metrics, access
  log to a file), 64 token events on the SSE body.

Rounds alternate the order; per round and case: tokens/s (64 x runs / wall time) and CPU
microseconds per token (``time.process_time``, the figure that matters on a shared machine).
Figures are medians over rounds. "Adapter layer cost" is run_service / framework CPU per
token (target: under 1.2); adapter / framework and service / framework are given beside it.
Knobs: LI_RUNS (50 per case and round), LI_ROUNDS (5). Writes
bench/results/adapter_llamaindex.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvloop
from asgi_lifespan import LifespanManager

from bench.agent_microbench import ASGIApp, _settings, _token, call
from bench.middleware_overhead import ROOT, _git, machine_info

OUT = ROOT / "bench" / "results" / "adapter_llamaindex.json"
TOKENS = 64
QUESTION = "Describe the sea."
ENTRY = "bench=bench.adapter_llamaindex:agent"


def _agent() -> Any:
    from llama_index.core.agent.workflow import FunctionAgent

    from tests.support.adapters.llamaindex_agents import ScriptedLLM

    return FunctionAgent(name="bench", llm=ScriptedLLM(reply_words=TOKENS))


agent = _agent()  # what ENTRY serves


async def framework_run() -> None:
    from llama_index.core.agent.workflow import AgentStream

    handler = agent.run(user_msg=QUESTION)
    deltas = 0
    async for event in handler.stream_events():
        if isinstance(event, AgentStream) and event.delta:
            deltas += 1
    result = await handler
    if deltas != TOKENS or len(str(result).split()) != TOKENS:
        raise RuntimeError(f"framework: {deltas} deltas, answer {str(result)[:80]!r}")


def adapter_run(services: Any) -> Callable[[], Awaitable[None]]:
    """The adapter alone: its ``run`` iterated with a RunContext whose publish does nothing."""
    from app.agents.context import RunContext
    from app.agents.control import RunControl
    from app.agents.events import Event, TokenEvent
    from app.agents.run_llm import RunLLM
    from app.agents.tools.registry import ToolRegistry

    served = services.agents.require("bench")

    async def publish(event: Event) -> None:
        return None

    async def run() -> None:
        ctx = RunContext(
            run_id="bench",
            agent="bench",
            principal_id="user:admin",
            session_id=None,
            history=[],
            llm=RunLLM(services.llm),
            tools=ToolRegistry(),
            max_steps=10,
            deadline=time.monotonic() + 60,
            input_timeout=60,
            params={},
            control=RunControl(),
            publish=publish,
        )
        tokens = 0
        async for event in served.run(QUESTION, ctx):
            tokens += isinstance(event, TokenEvent)
        if tokens != TOKENS:
            raise RuntimeError(f"adapter: {tokens} tokens")

    return run


def run_service_run(services: Any) -> Callable[[], Awaitable[None]]:
    from app.agents.events import RunCompleted, TokenEvent
    from app.agents.run_request import RunRequest
    from app.security.principals import Principal

    request = RunRequest(
        agent="bench", input=QUESTION, principal=Principal.for_user("admin"), store=False
    )

    async def run() -> None:
        started = await services.runs.start(request)
        tokens, last = 0, None
        async for event in started.events():
            tokens += isinstance(event, TokenEvent)
            last = event
        if tokens != TOKENS or not isinstance(last, RunCompleted):
            raise RuntimeError(f"run service: {tokens} tokens, ended with {last!r:.200}")

    return run


def service_run(app: ASGIApp, auth: list[tuple[bytes, bytes]]) -> Callable[[], Awaitable[None]]:
    body = json.dumps({"input": QUESTION, "store": False}).encode()

    async def run() -> None:
        status, _, answer = await call(app, "/v1/agents/bench/stream", auth, body)
        tokens = answer.count(b"event: token\n")
        if status != 200 or tokens != TOKENS or b"event: run_completed\n" not in answer:
            raise RuntimeError(f"service: status {status}, {tokens} tokens: {answer[-300:]!r}")

    return run


async def measure(run: Callable[[], Awaitable[None]], runs: int) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(runs):
        await run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "tokens_per_s": TOKENS * runs / wall,
        "cpu_us_per_token": cpu / (TOKENS * runs) * 1e6,
        "wall_ms_per_run": wall / runs * 1e3,
    }


async def _bench(password: str, runs: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    from app.entrypoints.server import settle_heap
    from app.main import create_app
    from app.services import build_services

    settings = _settings(password, TOKENS).model_copy(update={"AGENTS": [ENTRY]})
    services = build_services(settings)
    async with LifespanManager(create_app(settings, services=services)) as manager:
        auth = await _token(manager.app, password)
        cases = {
            "framework": framework_run,
            "adapter": adapter_run(services),
            "run_service": run_service_run(services),
            "service": service_run(manager.app, auth),
        }
        for run in cases.values():  # warm up: imports, caches, first-run validation
            for _ in range(max(runs // 5, 3)):
                await run()
        settle_heap()
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        for index in range(rounds):
            for name in list(cases) if index % 2 == 0 else list(cases)[::-1]:
                samples[name].append(await measure(cases[name], runs))
                figures = samples[name][-1]
                print(
                    f"round {index + 1} {name:<9} {figures['tokens_per_s']:9.0f} tokens/s "
                    f"{figures['cpu_us_per_token']:7.1f} us CPU/token",
                    file=sys.__stdout__,
                    flush=True,
                )
    return samples


def _median(samples: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(s[key] for s in samples), 2)


def main() -> int:
    runs = int(os.environ.get("LI_RUNS", "50"))
    rounds = int(os.environ.get("LI_ROUNDS", "5"))
    machine, started = machine_info(), datetime.now(UTC)
    password = secrets.token_urlsafe(18)
    real_stdout = sys.stdout
    # The app logs JSON to sys.stdout as configured at create_app: a file, as in production.
    with tempfile.NamedTemporaryFile("w", prefix="adapter-llamaindex-", suffix=".log") as log:
        sys.stdout = log
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                samples = runner.run(_bench(password, runs, rounds))
        except RuntimeError as exc:
            print(f"BENCH FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            sys.stdout = real_stdout
    keys = ("tokens_per_s", "cpu_us_per_token", "wall_ms_per_run")
    figures = {name: {key: _median(s, key) for key in keys} for name, s in samples.items()}
    base = figures["framework"]["cpu_us_per_token"]

    def over(case: str) -> float:
        return round(figures[case]["cpu_us_per_token"] / base, 3)

    cost = {
        "run_service_over_framework": over("run_service"),
        "adapter_only_over_framework": over("adapter"),
        "full_app_over_framework": over("service"),
        "measure": "CPU us per token, medians over rounds",
        "target": "run_service_over_framework < 1.2 (under 20% over the framework's own loop)",
    }
    result = {
        "benchmark": "adapter_llamaindex",
        "command": "python -m bench.adapter_llamaindex",
        "date": started.isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "machine": machine,
        "method": "one process on uvloop, runs one at a time; framework = FunctionAgent.run + "
        "handler.stream_events() directly; adapter = the adapter's run() with a no-op publish; "
        "run_service = RunService.start + run.events(), store false; service = POST "
        "/v1/agents/bench/stream through the full ASGI app in process (JWT, rate limit, "
        "metrics, access log to a file, store false); a 64-chunk scripted answer, no latency; "
        "process CPU time and wall time, medians over alternating rounds",
        "config": {"runs_per_round": runs, "rounds": rounds, "tokens": TOKENS},
        "figures": figures,
        "adapter_layer_cost": cost,
        "samples": samples,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"figures": figures, "adapter_layer_cost": cost}, indent=2))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
