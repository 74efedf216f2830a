"""Waiting, briefly, for a response to reach its end (a cancel that takes effect)."""

from __future__ import annotations

import asyncio

from app.protocols.openai.responses_encoder import ResponseEncoder
from app.protocols.openai.responses_events import logged_then_live, run_to_end
from app.protocols.openai.responses_service import ResponsesService, head_of
from app.protocols.openai.responses_store import ResponseMeta

# A cancelled run stops within a second (its agent and LLM call are cancelled); a task's
# worker sees the request on its nudge or, at worst, its next heartbeat.
SETTLE_SECONDS = 5.0


async def settle(
    service: ResponsesService, meta: ResponseMeta, *, seconds: float = SETTLE_SECONDS
) -> ResponseEncoder:
    """The response once it has ended, or as it stands after ``seconds``."""
    encoder = ResponseEncoder(head_of(meta))
    try:
        async with asyncio.timeout(seconds):
            return await run_to_end(
                encoder, logged_then_live(service.runs, meta.run_id, after=meta.after)
            )
    except TimeoutError:
        return await service.logged(meta)
