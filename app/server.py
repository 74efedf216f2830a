"""The uvicorn Server used by `agent-service serve` and by the gunicorn worker.

The only change: tell the app when shutdown starts (see app/lifecycle.py).
"""

from __future__ import annotations

from types import FrameType

import uvicorn

from app.lifecycle import shutdown


class DrainingServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        shutdown.trigger()
        super().handle_exit(sig, frame)
