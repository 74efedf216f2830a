"""Moved to ``app.agents.streaming`` (public through ``app.sdk``); kept for old imports."""

from app.agents.streaming import StreamedCall, generation_params

__all__ = ["StreamedCall", "generation_params"]
