"""How a tool call can end: output, refusal, crash, timeout, unknown tool, or cancellation.

Only cancellation leaves ``ToolRegistry.call`` as an exception; everything else is a
``ToolOutcome`` the agent hands back to the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.agents.context import RunContext
from app.agents.control import RunControl
from app.agents.events import ToolCallEvent, ToolResultEvent
from app.agents.run_llm import RunLLM
from app.agents.tools.registry import ToolOutcome, ToolRegistry
from app.sdk import tool

release = threading.Event()


@tool
def blocking_lookup(key: str) -> str:
    """Block the calling thread until released (a slow database driver, say)."""
    release.wait(5)
    return f"{key}@{threading.get_ident()}"


@tool
async def never_returns() -> str:
    """Hang forever."""
    await asyncio.Event().wait()
    return "unreachable"


@tool
def sleeps_in_a_thread() -> str:
    """Block a thread well past the timeout."""
    time.sleep(2)  # in a worker thread: what the timeout must not wait for
    return "late"


@tool
def buggy(n: int) -> str:
    """Divide by a number."""
    return str(1 / n)


@tool
async def raises_its_own_timeout() -> str:
    """Fail with the tool's own TimeoutError (an upstream timed out)."""
    raise TimeoutError("upstream took too long")


@tool
def noisy() -> str:
    """Fail with a very long message."""
    raise RuntimeError("x" * 5000)


async def test_a_sync_tool_runs_in_a_thread_while_the_event_loop_keeps_going() -> None:
    registry = ToolRegistry([blocking_lookup])
    release.clear()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    call = asyncio.create_task(registry.call("blocking_lookup", {"key": "k"}))
    await asyncio.sleep(0.2)  # the tool is blocked on release; the loop must still tick
    assert ticks >= 5 and not call.done()
    release.set()
    outcome = await call
    ticking.cancel()
    assert outcome.success
    key, thread_id = outcome.output.split("@")
    assert key == "k" and int(thread_id) != threading.get_ident()


@pytest.mark.parametrize("name", ["never_returns", "sleeps_in_a_thread"])
async def test_a_tool_past_its_timeout_is_a_failed_outcome_at_the_timeout(name: str) -> None:
    registry = ToolRegistry([never_returns, sleeps_in_a_thread], timeout=0.2)
    started = time.monotonic()
    outcome = await registry.call(name, {})
    assert time.monotonic() - started < 1.0
    assert outcome == ToolOutcome(f"tool {name!r} did not finish within 0.2 seconds", False)


async def test_any_exception_is_a_failed_outcome_naming_its_type_and_logged_once() -> None:
    registry = ToolRegistry([buggy, raises_its_own_timeout, noisy])
    with capture_logs() as logs:
        outcome = await registry.call("buggy", {"n": 0})
    assert outcome == ToolOutcome("tool 'buggy' failed: ZeroDivisionError: division by zero", False)
    failures = [entry for entry in logs if entry["event"] == "tool_failed"]
    assert len(failures) == 1 and failures[0]["tool"] == "buggy"
    assert failures[0]["log_level"] == "error" and failures[0]["exc_info"] is True

    # The tool's own TimeoutError is its failure, not our deadline.
    own = await registry.call("raises_its_own_timeout", {})
    assert (
        own.output == "tool 'raises_its_own_timeout' failed: TimeoutError: upstream took too long"
    )
    long = await registry.call("noisy", {})
    assert not long.success and len(long.output) < 300 and long.output.endswith("...")


async def test_an_unknown_tool_is_a_failed_outcome() -> None:
    assert await ToolRegistry().call("rm_rf", {"path": "/"}) == ToolOutcome(
        "unknown tool 'rm_rf'", False
    )


@pytest.mark.parametrize("name", ["never_returns", "blocking_lookup"])
async def test_cancelling_the_caller_cancels_the_tool_call(name: str) -> None:
    registry = ToolRegistry([never_returns, blocking_lookup], timeout=30)
    release.clear()
    call = asyncio.create_task(registry.call(name, {"key": "k"} if name != "never_returns" else {}))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert time.monotonic() - started < 0.5  # a blocked thread is abandoned, not awaited
    release.set()


def _context(registry: ToolRegistry, published: list[Any]) -> RunContext:
    async def publish(event: Any) -> None:
        published.append(event)

    return RunContext(
        run_id="r1",
        agent="tester",
        principal_id="user:admin",
        session_id=None,
        history=[],
        llm=RunLLM(llm=None),  # type: ignore[arg-type]  # these tests make no LLM call
        tools=registry,
        max_steps=5,
        deadline=time.monotonic() + 60,
        input_timeout=60,
        params={},
        control=RunControl(),
        publish=publish,
    )


async def test_call_tool_returns_the_outcome_and_publishes_call_and_result() -> None:
    published: list[Any] = []
    ctx = _context(ToolRegistry([buggy]), published)

    ok = await ctx.call_tool("c1", "buggy", {"n": 4})
    failed = await ctx.call_tool("c2", "buggy", {"n": "zero"})
    unknown = await ctx.call_tool("c3", "nope", {})

    assert ok == ToolOutcome("0.25", True)
    assert failed.success is False and "n: Input should be a valid integer" in failed.output
    assert unknown == ToolOutcome("unknown tool 'nope'", False)
    calls = [event for event in published if isinstance(event, ToolCallEvent)]
    results = [event for event in published if isinstance(event, ToolResultEvent)]
    assert [(event.id, event.name) for event in calls] == [
        ("c1", "buggy"),
        ("c2", "buggy"),
        ("c3", "nope"),
    ]
    assert [(event.id, event.success) for event in results] == [
        ("c1", True),
        ("c2", False),
        ("c3", False),
    ]
    assert results[1].output == failed.output
