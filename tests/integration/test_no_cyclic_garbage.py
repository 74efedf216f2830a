"""A finished run is freed by reference counting, not left for the garbage collector.

A reference cycle anywhere in what a run holds (its context, its feed of events, the SSE
response writing it) keeps all of it alive until a collection; with many runs in flight the
collections cost ~11 % of a cached invoke's CPU and pause every stream. The server raises
the young-generation threshold on the strength of this (app/entrypoints/server.py).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.conftest import AppClient, login

BODY = {"input": "Tell me about the sea", "store": False}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Tell me about the sea"}]}


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """Collection off; what the next collection finds unreachable is kept for the test."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def _ours(garbage: list[object]) -> Counter[str]:
    return Counter(
        f"{type(o).__module__}.{type(o).__qualname__}"
        for o in garbage
        if type(o).__module__.startswith("app.")
    )


async def test_finished_runs_leave_no_cyclic_garbage(
    client: AppClient, saved_garbage: list[object]
) -> None:
    auth = {"Authorization": f"Bearer {await login(client)}"}
    bypass = {**auth, "Cache-Control": "no-cache"}

    async def runs() -> None:
        for headers in (bypass, auth):  # the model's answer, then the cached one
            invoked = await client.post("/v1/agents/chat/invoke", json=BODY, headers=headers)
            assert invoked.status_code == 200, invoked.text
            streamed = await client.post("/v1/agents/chat/stream", json=BODY, headers=headers)
            assert streamed.status_code == 200 and "run_completed" in streamed.text
        chat = await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth
        )
        assert chat.status_code == 200 and chat.text.rstrip().endswith("data: [DONE]")

    await runs()  # first use of every path: caches and lazily made objects
    gc.collect()
    gc.garbage.clear()
    await runs()
    gc.collect()
    saved_garbage.extend(gc.garbage)
    assert _ours(saved_garbage) == Counter()
