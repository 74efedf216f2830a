"""The uvicorn Server and its transport options, for `agent-service serve` and the gunicorn
worker alike.

Two changes to the Server about shutdown (see app/core/lifecycle.py): tell the app when it
starts, and give open WebSockets a moment to send their final ``shutdown`` frame before
uvicorn closes them (it closes every WebSocket with 1012 at once, where SSE streams get a grace
period). And one about the heap: once started, everything alive (modules, settings, the app)
is frozen out of the cyclic garbage collector and young collections run less often. A full
collection otherwise walks the whole heap, pausing every open stream for 0.2-0.5 s under load
(measured by bench/run_log.py: it decided whether 1,000 readers' p99 lateness met 20 ms).

``transport_options`` are the request limits (app/entrypoints/http_protocol.py),
``ws_max_size`` (a WebSocket message may be no larger than a request body) and
``limit_concurrency``; what they cannot enforce is in docs/deployment.md.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from types import FrameType
from typing import Any

import uvicorn

from app.core.config import Settings
from app.core.lifecycle import shutdown
from app.entrypoints.http_protocol import guarded_protocol

FINAL_FRAME_SECONDS = 0.2
# Young-generation threshold (CPython's default is 700): a request allocates hundreds of
# short-lived objects, so the default collects several times per request. A finished run
# leaves no cyclic garbage (tests/integration/test_no_cyclic_garbage.py), so what a collection would
# find is what in-flight requests still hold: at 10,000 a cached invoke with 64 in flight
# paid ~11 % of its CPU for collections that freed nothing; at 50,000 none ran in 600
# requests (bench/results/agent_microbench.json has the figures).
GC_YOUNG_THRESHOLD = 50_000
UVICORN_WS_MAX_SIZE = 16 * 1024 * 1024  # uvicorn's own default, when bodies are unlimited


def transport_options(settings: Settings) -> dict[str, Any]:
    """uvicorn Config options that bound what one client can make a process hold."""
    return {
        "http": guarded_protocol(settings),
        "ws_max_size": settings.MAX_REQUEST_BODY_BYTES or UVICORN_WS_MAX_SIZE,
        "limit_concurrency": settings.SERVER_LIMIT_CONCURRENCY or None,
        "access_log": False,  # it prints query strings; our middleware logs requests
    }


def settle_heap() -> None:
    """Freeze what start-up made (it lives as long as the process) out of the collector."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class DrainingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        settle_heap()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        shutdown.trigger()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        shutdown.trigger()
        await asyncio.sleep(FINAL_FRAME_SECONDS)
        await super().shutdown(sockets)
