"""The baseline of bench/agent_path.py: a bare FastAPI app answering what our agent routes answer.

No middleware, no auth, no run machinery: ``POST /invoke`` returns the answer as plain JSON
(the fields and about the bytes of ``POST /v1/agents/chat/invoke``) and ``POST /stream``
returns it as server-sent events, one ``data:`` frame per token, framed like ours
(``run_started``, one ``token`` per token, ``step``, ``run_completed``; ``seq``/``ts`` in
the JSON and an ``id:`` line), so a client measures both servers with the same code and the
same bytes cross the socket. ``ts`` is stamped as each frame is made, as our runs stamp
theirs, so the lateness of an event means the same on both.

Environment (read at start-up):
- BARE_TOKENS (64): tokens per answer.
- BARE_LATENCY_MS (0): sleep before answering (S3: a model with 200 ms latency).
- BARE_TOKENS_PER_SECOND (0 = unpaced): token pacing on an absolute schedule (S4), like the
  offline model's.

Run: ``python -m bench.bare_app --port N`` (one uvicorn worker, uvloop + httptools, no
access log: what ``agent-service serve`` runs on, minus the app).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

# Words of about the offline model's length (its 64-token answer is ~400 characters).
_WORDS = (
    "This answer comes from the offline model. You wrote: a question about the sea. Works "
    "this deciding your case depends short context for short like short consider so clear "
    "consider deciding depends it before a the short what."
).split()


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


TOKENS = int(_env_number("BARE_TOKENS", 64))
LATENCY_S = _env_number("BARE_LATENCY_MS", 0) / 1000
INTERVAL_S = 1 / rate if (rate := _env_number("BARE_TOKENS_PER_SECOND", 0)) > 0 else 0.0
ANSWER_TOKENS = [_WORDS[i % len(_WORDS)] + " " for i in range(TOKENS - 1)] + [
    _WORDS[(TOKENS - 1) % len(_WORDS)]
]
ANSWER = "".join(ANSWER_TOKENS)
USAGE = {"prompt_tokens": 11, "completion_tokens": TOKENS, "total_tokens": 11 + TOKENS}


class RunBody(BaseModel):
    """What a naive FastAPI service would declare: the fields our benchmark sends."""

    input: str = Field(min_length=1)
    store: bool = True


def _ts() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _frame(seq: int, event: str, fields: dict[str, Any]) -> bytes:
    data = json.dumps({"seq": seq, "ts": _ts(), "type": event, **fields}, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\nid: {seq}\n\n".encode()


async def paced_tokens() -> AsyncIterator[str]:
    """The answer's tokens on an absolute schedule (one every INTERVAL_S from the first, like
    the offline model's pacing), at once when unpaced; the comparators stream these too."""
    paced_from = time.monotonic()
    for index, token in enumerate(ANSWER_TOKENS):
        if INTERVAL_S and index:
            await asyncio.sleep(max(0.0, paced_from + index * INTERVAL_S - time.monotonic()))
        yield token


async def _frames(run_id: str) -> AsyncIterator[bytes]:
    started = time.perf_counter()
    yield _frame(1, "run_started", {"run_id": run_id, "agent": "chat", "session_id": None})
    if LATENCY_S:
        await asyncio.sleep(LATENCY_S)
    index = 0
    async for token in paced_tokens():
        index += 1
        yield _frame(index + 1, "token", {"text": token})
    elapsed = round(time.perf_counter() - started, 4)
    seq = len(ANSWER_TOKENS) + 2
    yield _frame(seq, "step", {"number": 1, "duration_s": elapsed, "success": True})
    done = {"output": ANSWER, "usage": USAGE, "cached": False, "execution_time": elapsed}
    yield _frame(seq + 1, "run_completed", done)


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/invoke")
async def invoke(body: RunBody) -> dict[str, Any]:
    started = time.perf_counter()
    if LATENCY_S:
        await asyncio.sleep(LATENCY_S)
    return {
        "output": ANSWER,
        "session_id": None,
        "run_id": uuid.uuid4().hex,
        "usage": USAGE,
        "cached": False,
        "execution_time": round(time.perf_counter() - started, 4),
        "metadata": {"agent": "chat", "steps": 1, "llm_calls": 1},
    }


@app.post("/stream")
async def stream(body: RunBody) -> StreamingResponse:
    return StreamingResponse(
        _frames(uuid.uuid4().hex),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def serve(app: Any, description: str) -> None:
    """``--host``/``--port`` from the command line, then one uvicorn worker as ``agent-service
    serve`` runs (uvloop + httptools, no access log): the comparators' ``main`` too."""
    import uvicorn

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",  # start-up lines only (no access log): the harness reads the address
        workers=1,
    )


def main() -> None:
    serve(app, __doc__.split("\n", 1)[0])


if __name__ == "__main__":
    main()
