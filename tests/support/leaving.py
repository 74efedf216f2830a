"""Shared steps of the "a client leaving closes the upstream stream" proofs (tests/e2e)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.fake_openai import FakeOpenAI
from tests.support.server_process import ServerProcess
from tests.support.sse import Frame, parse_lines


def open_frames(response: httpx.Response) -> Iterator[Frame]:
    """The response's SSE frames. Hold on to the iterator while the client should still be
    connected: a dropped one is closed by garbage collection, and closing it closes the
    connection (httpcore's stream closes on GeneratorExit), which is the client leaving."""
    return parse_lines(response.iter_lines())


def first_token_texts(frames: Iterator[Frame], count: int) -> list[str]:
    """The texts of the next ``count`` token frames (then stop reading, still connected)."""
    texts: list[str] = []
    for frame in frames:
        if frame.event == "token":
            texts.append(frame.json["text"])
            if len(texts) == count:
                break
    return texts


def assert_one_upstream_stream_open(fake: FakeOpenAI, server: ServerProcess) -> None:
    """While the client reads: the model got exactly one request and is still streaming.
    On failure the message carries what tells a flake apart from a bug: the count, when the
    model saw the connection end, and the server's last log lines."""
    if fake.request_count == 1 and not fake.disconnected.is_set():
        return
    ended = fake.disconnected_at
    ago = f"{time.monotonic() - ended:.3f} s ago" if ended is not None else "never"
    tail = "\n".join(server.logs().splitlines()[-15:])
    raise AssertionError(
        f"model requests: {fake.request_count}, upstream ended: {ago}; server log tail:\n{tail}"
    )


def assert_upstream_closed_within_a_second(fake: FakeOpenAI, left_at: float) -> None:
    """The fake model server saw its stream's connection close less than 1 s after the
    client left (``left_at``, time.monotonic())."""
    assert fake.disconnected.wait(timeout=2), "the upstream stream was never closed"
    assert fake.disconnected_at is not None
    assert fake.disconnected_at - left_at < 1.0


def run_when_ended(client: httpx.Client, run_id: str, auth: dict[str, str]) -> dict[str, Any]:
    """The run's record once it is no longer running (at most 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=auth).json()
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, f"the run never ended: {run}"
        time.sleep(0.02)
