"""Responses events as server-sent events: ``event: <type>`` and ``data: <event JSON>``, as
OpenAI's API sends them (the SDKs read ``data``; ``sequence_number`` is in it)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable

import structlog

from app.core.lifecycle import raise_if_cancelling
from app.protocols.openai.responses_encoder import Json, ResponseEncoder
from app.protocols.openai.responses_events import Batches, encode

log = structlog.get_logger(__name__)


def frame(event: Json) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def shutdown_frame() -> bytes:
    """What an open stream gets when the server stops: an error the SDKs raise (``error`` in
    the data). A background response goes on; GET it again with ``stream=true`` and
    ``starting_after`` to resume."""
    message = (
        "The server is restarting. A background response goes on: resume it with GET "
        "/v1/responses/{id}?stream=true&starting_after=<last sequence_number>."
    )
    error = {"message": message, "type": "server_error", "param": None, "code": "server_shutdown"}
    return frame({"type": "error", **error, "error": error})


async def response_frames(
    encoder: ResponseEncoder,
    batches: Batches,
    *,
    starting_after: int | None = None,
    on_end: Callable[[ResponseEncoder], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The response's frames from ``response.created`` to its terminal event, skipping those
    numbered up to ``starting_after`` (a client resuming). A failure to read the run's events
    ends the stream with an ``error`` event, never a broken connection."""

    def fresh(events: list[Json]) -> bytes:
        if starting_after is not None:
            events = [e for e in events if e["sequence_number"] > starting_after]
        return b"".join(frame(event) for event in events)

    try:
        chunk = fresh(encoder.opening())
        if chunk:
            yield chunk
        async for events in encode(encoder, batches):
            chunk = fresh(events)
            if chunk:
                yield chunk
    except Exception as exc:
        raise_if_cancelling()
        log.warning("response_stream_failed", response_id=encoder.head.id, error=type(exc).__name__)
        yield frame(
            {
                "type": "error",
                "code": "server_error",
                "message": "The response's events could not be read; retry shortly.",
                "param": None,
                "sequence_number": encoder.number,
            }
        )
    finally:
        await batches.aclose()
        if on_end is not None:
            on_end(encoder)
