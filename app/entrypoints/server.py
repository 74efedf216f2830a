"""The uvicorn Server used by `agent-service serve` and by the gunicorn worker.

Two changes, both about shutdown (see app/core/lifecycle.py): tell the app when it starts, and
give open WebSockets a moment to send their final ``shutdown`` frame before uvicorn closes
them (it closes every WebSocket with 1012 at once, where SSE streams get a grace period).
"""

from __future__ import annotations

import asyncio
import socket
from types import FrameType

import uvicorn

from app.core.lifecycle import shutdown

FINAL_FRAME_SECONDS = 0.2


class DrainingServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        shutdown.trigger()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        shutdown.trigger()
        await asyncio.sleep(FINAL_FRAME_SECONDS)
        await super().shutdown(sockets)
