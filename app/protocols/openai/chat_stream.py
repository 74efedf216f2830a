"""A run's events as ``chat.completion.chunk`` server-sent events, ending ``data: [DONE]``.

The hot path is one frame per token, so each frame is bytes from templates made once per
request: the token's text is cut, already JSON-encoded, from the event's own JSON (made once
by the run for its log and every reader), and nothing is parsed or validated per token.
tests/unit/protocols/test_openai_wire.py holds every frame kind equal to what the ``openai``
package parses (ChatCompletionChunk).

Mapping (docs/architecture.md, OpenAI section):
- run_started -> the first chunk: ``delta {"role": "assistant", "content": ""}``, and the
  extension ``agent_run {id, session_id}``;
- token -> ``delta.content``;
- tool_call / tool_result -> a chunk with an empty delta and the extension ``agent_step``
  (the event as the native stream sends it): the agent's own server-side steps, never
  ``delta.tool_calls`` for the client to execute;
- run_completed -> ``finish_reason: "stop"``; with ``stream_options.include_usage`` a last
  chunk with no choices and the usage (every earlier chunk then says ``"usage": null``);
- error -> ``data: {"error": {...}}`` (the SDKs raise it as APIError), then ``[DONE]``;
- input_required -> ``data: {"error": {"code": "input_required", "run_id", "input_request"
  ...}}``, then ``[DONE]``: the stream ends, the run waits for its answer on
  POST /v1/runs/{id}/input (INPUT_TIMEOUT_SECONDS).
Everything else (plan, step, log, message) is left out: GET /v1/runs/{id}/events has it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

from app.agents.events import ErrorEvent, InputRequired, RunCompleted
from app.agents.feed import LoggedEvent
from app.agents.followers import EventsMissed, FollowItem
from app.api.run_requests import run_error
from app.api.sse import joined
from app.protocols.openai.errors import error_type

DONE = b"data: [DONE]\n\n"
_TEXT_KEY = '"text":'
STEP_TYPES = frozenset({"tool_call", "tool_result"})


def _frame(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class ChunkEncoder:
    """The frames of one completion; ``content`` is the per-token path."""

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool
    ) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        head = (
            f'data: {{"id":{json.dumps(completion_id)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{json.dumps(model)},"system_fingerprint":null,'
            '"choices":[{"index":0,"delta":'
        )
        self._usage_null = ',"usage":null' if include_usage else ""
        self._head = head.encode()
        self._content_head = (head + '{"content":').encode()
        self._content_tail = (
            '},"logprobs":null,"finish_reason":null}]' + self._usage_null + "}\n\n"
        ).encode()
        self._open_choice = '},"logprobs":null,"finish_reason":null}]'

    def content(self, text_json: str) -> bytes:
        """A content delta; ``text_json`` is the text as a JSON string, quotes included."""
        return self._content_head + text_json.encode() + self._content_tail

    def opening(self, run_id: str, session_id: str | None) -> bytes:
        run = json.dumps({"id": run_id, "session_id": session_id}, separators=(",", ":"))
        return (
            self._head
            + (
                '{"role":"assistant","content":""'
                + self._open_choice
                + self._usage_null
                + f',"agent_run":{run}}}\n\n'
            ).encode()
        )

    def step(self, event_json: str) -> bytes:
        return (
            self._head
            + (
                "{" + self._open_choice + self._usage_null + f',"agent_step":{event_json}}}\n\n'
            ).encode()
        )

    def finish(self) -> bytes:
        return (
            self._head
            + ('{},"logprobs":null,"finish_reason":"stop"}]' + self._usage_null + "}\n\n").encode()
        )

    def usage(self, completed: RunCompleted) -> bytes:
        return _frame(
            {
                "id": self.completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": completed.usage.model_dump(),
            }
        )


def token_text_json(event_json: str) -> str:
    """The ``text`` of a token event's JSON, still JSON-encoded. ``text`` is the event's last
    field, and its key cannot occur earlier: a quote inside a JSON string is escaped."""
    return event_json[event_json.index(_TEXT_KEY) + len(_TEXT_KEY) : -1]


def run_error_body(error: ErrorEvent, run_id: str) -> dict[str, Any]:
    """A run that failed, as OpenAI's error object (the status invoke would answer decides
    its type); ``run_id`` points at the record."""
    status = run_error(error).status
    body: dict[str, Any] = {
        "message": error.message,
        "type": error_type(status),
        "param": None,
        "code": error.code,
        "run_id": run_id,
    }
    if error.retryable is not None:
        body["retryable"] = error.retryable
    return body


def input_required_body(
    asked: InputRequired, *, run_id: str, session_id: str | None, prefix: str
) -> dict[str, Any]:
    """The completion's end when the agent asks for human input: the run waits for the answer
    (Chat Completions has no way to carry it) on our native run routes."""
    return {
        "message": f"The agent asks for human input: {asked.prompt} Answer with POST "
        f'{prefix}/runs/{run_id}/input {{"request_id": "{asked.request_id}", "value": '
        f"...}}, then read the rest of the run at GET {prefix}/runs/{run_id}/events.",
        "type": "invalid_request_error",
        "param": None,
        "code": "input_required",
        "run_id": run_id,
        "session_id": session_id,
        "input_request": {
            "request_id": asked.request_id,
            "kind": asked.kind,
            "prompt": asked.prompt,
            "choices": asked.choices,
        },
    }


def shutdown_frame() -> bytes:
    return _frame(
        {
            "error": {
                "message": "The server is restarting; the run was stopped. Retry the request.",
                "type": "server_error",
                "param": None,
                "code": "server_shutdown",
            }
        }
    )


async def chunk_frames(
    batches: AsyncGenerator[list[FollowItem], None],
    encoder: ChunkEncoder,
    *,
    run_id: str,
    session_id: str | None,
    prefix: str,
    handed_off: Callable[[], None],
) -> AsyncGenerator[bytes, None]:
    """The frames of each batch of events that were ready together, joined (app/api/sse.py
    ``joined``). ``handed_off`` is called when the stream ends at an input request:
    the run lives on, waiting for an answer, after its client has gone."""
    try:
        async for batch in batches:
            frames: list[bytes] = []
            ended = False
            for item in batch:
                if isinstance(item, EventsMissed):  # only a reader that fell behind
                    continue
                kind = item.type
                if kind == "token":
                    frames.append(encoder.content(token_text_json(item.json)))
                elif kind in STEP_TYPES:
                    frames.append(encoder.step(item.json))
                elif kind == "run_started":
                    frames.append(encoder.opening(run_id, session_id))
                elif kind in ("run_completed", "error", "input_required"):
                    frames.append(_ending(item, encoder, run_id, session_id, prefix, handed_off))
                    ended = True
                    break
            for write in joined(frames):
                yield write
            if ended:
                return
    finally:
        await batches.aclose()


def _ending(
    item: LoggedEvent,
    encoder: ChunkEncoder,
    run_id: str,
    session_id: str | None,
    prefix: str,
    handed_off: Callable[[], None],
) -> bytes:
    event = item.event
    if isinstance(event, RunCompleted):
        last = encoder.usage(event) if encoder.include_usage else b""
        return encoder.finish() + last + DONE
    if isinstance(event, InputRequired):
        handed_off()
        body = input_required_body(event, run_id=run_id, session_id=session_id, prefix=prefix)
        return _frame({"error": body}) + DONE
    assert isinstance(event, ErrorEvent)  # noqa: S101 - the only other ending
    return _frame({"error": run_error_body(event, run_id)}) + DONE
