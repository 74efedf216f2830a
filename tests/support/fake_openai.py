"""A small OpenAI-compatible chat completions server for tests: real sockets, real SSE.

It runs a raw asyncio server on a free port in a background thread, so a test controls the
bytes on the wire: chunked SSE (one HTTP chunk per event), status answers with Retry-After,
an abrupt close mid-stream, a slow stream that notices when the client goes away, and a hang.
Each request takes the next scripted reply (``script(...)``), else ``default``.

    with FakeOpenAI() as fake:
        fake.script(Status(429, headers={"Retry-After": "1"}), Text(["Hi", " there"]))
        ... OpenAICompatProvider(base_url=fake.url, ...) ...
        assert fake.request_count == 2
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Text:
    """A normal streamed answer, one SSE event per chunk."""

    chunks: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake", "."])
    prompt_tokens: int = 7
    completion_tokens: int | None = None  # None: the number of chunks
    finish_reason: str = "stop"
    interval: float = 0.0  # seconds between events
    send_usage: bool = True


@dataclass
class ToolCalls:
    """Tool calls whose JSON arguments arrive split across chunks: (id, name, pieces)."""

    calls: list[tuple[str, str, list[str]]]
    prompt_tokens: int = 11
    completion_tokens: int = 9


@dataclass
class Status:
    """A whole (non-streamed) answer: by default an error with a JSON body; e.g. a proxy's
    HTML error page with ``content_type="text/html"``, or extra headers (Retry-After)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"error": {"message": "scripted failure", "type": "server_error"}}'
    content_type: str = "application/json"


@dataclass
class Disconnect:
    """Send these content chunks, then close the socket without ending the chunked body."""

    chunks: list[str] = field(default_factory=lambda: ["Partial", " answer"])


@dataclass
class Slow:
    """One content chunk every ``interval`` seconds for ``duration`` seconds."""

    interval: float = 0.1
    duration: float = 10.0


@dataclass
class Hang:
    """Read the request, then answer nothing for ``seconds`` (client read timeouts)."""

    seconds: float = 5.0


Reply = Text | ToolCalls | Status | Disconnect | Slow | Hang
_REASONS = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic() when the request was read


class FakeOpenAI:
    def __init__(self) -> None:
        self.default: Reply = Text()
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()  # a Slow stream saw the client go away
        self.disconnected_at: float | None = None
        self._script: deque[Reply] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=5)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- server side (runs in the background thread) -----------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(
                RecordedRequest(method, path, headers, json.loads(body or b"{}"), time.monotonic())
            )
            reply = self._script.popleft() if self._script else self.default
            await self._reply(reply, reader, writer, self.requests[-1].body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _reply(
        self,
        reply: Reply,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        body: dict[str, Any],
    ) -> None:
        model = str(body.get("model", "fake-model"))
        if isinstance(reply, Hang):
            await asyncio.sleep(reply.seconds)
        elif isinstance(reply, Status):
            payload = reply.body.encode()
            extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}\r\n"
                f"Content-Type: {reply.content_type}\r\nContent-Length: {len(payload)}\r\n"
                f"{extra}Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        elif isinstance(reply, Text):
            await self._start_sse(writer)
            await self._event(writer, _chunk(model, {"role": "assistant", "content": ""}))
            for text in reply.chunks:
                if reply.interval:
                    await asyncio.sleep(reply.interval)
                await self._event(writer, _chunk(model, {"content": text}))
            await self._event(writer, _chunk(model, {}, finish=reply.finish_reason))
            if reply.send_usage and body.get("stream_options", {}).get("include_usage"):
                completion = reply.completion_tokens
                usage = _usage(
                    reply.prompt_tokens, len(reply.chunks) if completion is None else completion
                )
                await self._event(writer, {"model": model, "choices": [], "usage": usage})
            await self._done(writer)
        elif isinstance(reply, ToolCalls):
            await self._start_sse(writer)
            for index, (call_id, name, pieces) in enumerate(reply.calls):
                opening = {"index": index, "id": call_id, "type": "function"}
                opening["function"] = {"name": name, "arguments": ""}
                await self._event(writer, _chunk(model, {"tool_calls": [opening]}))
                for piece in pieces:
                    part = {"index": index, "function": {"arguments": piece}}
                    await self._event(writer, _chunk(model, {"tool_calls": [part]}))
            await self._event(writer, _chunk(model, {}, finish="tool_calls"))
            usage = _usage(reply.prompt_tokens, reply.completion_tokens)
            await self._event(writer, {"model": model, "choices": [], "usage": usage})
            await self._done(writer)
        elif isinstance(reply, Disconnect):
            await self._start_sse(writer)
            for text in reply.chunks:
                await self._event(writer, _chunk(model, {"content": text}))
            await asyncio.sleep(0.05)  # let the client read them before the connection drops
            writer.transport.abort()
        elif isinstance(reply, Slow):
            await self._slow(reply, reader, writer, model)

    async def _slow(
        self, reply: Slow, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, model: str
    ) -> None:
        await self._start_sse(writer)
        # The request is fully read, so the next read returns b"" exactly when the client
        # closes its side: that is the disconnect, seen without waiting for a failed write.
        gone = asyncio.ensure_future(reader.read(1))
        deadline = time.monotonic() + reply.duration
        try:
            number = 0
            while time.monotonic() < deadline:
                await self._event(writer, _chunk(model, {"content": f"tick{number} "}))
                number += 1
                done, _ = await asyncio.wait({gone}, timeout=reply.interval)
                if done:
                    break
            else:
                await self._done(writer)
                return
        except ConnectionError:
            pass
        finally:
            gone.cancel()
        self.disconnected_at = time.monotonic()
        self.disconnected.set()

    async def _start_sse(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()

    async def _event(self, writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
        await self._write_chunk(writer, f"data: {json.dumps(payload)}\n\n".encode())

    async def _done(self, writer: asyncio.StreamWriter) -> None:
        await self._write_chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _write_chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()


def _chunk(model: str, delta: dict[str, Any], *, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
