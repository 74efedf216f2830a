"""uvicorn's httptools protocol with the request limits it does not have.

What uvicorn 0.54 enforces by itself (read in its source): with httptools, its default
parser, nothing on the request head: 5,000 headers or one 8 MiB header are read whole, and
no timer runs while a head or a body trickles in (``timeout_keep_alive`` only covers the gap
between requests), so one byte every few seconds holds a connection for ever. h11 bounds the
head's size (``h11_max_incomplete_event_size``) but neither the header count nor any time.
gunicorn's ``limit_request_*`` settings belong to its own HTTP parser, which the uvicorn
worker does not use.

So this subclass adds, per request, through the parser callbacks uvicorn already uses:
- at most SERVER_MAX_HEADER_BYTES received before the head is complete (request line
  included), and at most SERVER_MAX_HEADERS header fields: 431, then close;
- the head within SERVER_HEADER_TIMEOUT_SECONDS of the connection opening (or of the first
  byte of a later request on it), the body within SERVER_BODY_TIMEOUT_SECONDS of the head:
  408, then close (a connection that never sent a byte is closed silently).
Refusals are problem+json like every other refusal. A WebSocket upgrade leaves the timers
behind; WebSocket frames are bounded by ``ws_max_size`` (server.py).
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import Settings
from app.core.problems import PROBLEM_CONTENT_TYPE, problem_body
from app.observability.tracing import PEER_SCOPE_KEY


class _HeadRefused(Exception):
    """Raised inside a parser callback; httptools turns it into a parser error."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes: ClassVar[int] = 32_768
    max_headers: ClassVar[int] = 100
    head_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0
    keep_peer: ClassVar[bool] = False  # tracing believes a traceparent from trusted proxies
    # Ours in slots: added to uvicorn's instance dict they made it grow a size class, 1.5 KB
    # more per open connection.
    __slots__ = (
        "_deadline",
        "_head_bytes",
        "_header_count",
        "_in_head",
        "_received_any",
        "_refusal",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between a request's first byte and its last header
        self._head_bytes = 0
        self._header_count = 0
        self._received_any = False
        self._refusal: tuple[int, str, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        if self._in_head:
            self._head_bytes += len(data)
            if self._deadline is None:  # the next request on a kept-alive connection
                self._arm(self.head_timeout)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes:
            detail = f"The request head exceeds {self.max_head_bytes} bytes."
            self._refuse(431, "headers_too_large", detail)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol takes the transport over
        super().handle_websocket_upgrade()

    # -- parser callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.keep_peer:
            # The direct peer, before uvicorn's proxy-headers middleware puts the forwarded
            # client in scope["client"] (app/observability/tracing_http.py).
            self.scope[PEER_SCOPE_KEY] = self.client  # type: ignore[literal-required]

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (
                431,
                "too_many_headers",
                f"The request has more than {self.max_headers} header fields.",
            )
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = self._header_count = 0
        self._disarm()
        super().on_headers_complete()
        if not self.parser.should_upgrade():
            self._arm(self.body_timeout)  # disarmed by on_message_complete, at once if no body

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error 400; a refusal of ours says what it was.
        if self._refusal is not None:
            status, code, detail = self._refusal
            self._refusal = None
            self._refuse(status, code, detail)
        else:
            super().send_400_response(msg)

    # -- timers and refusals -----------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            return  # answered already (without reading the whole body): let it finish
        if not self._received_any:
            self.transport.close()  # an idle connection: nothing to answer
            return
        phase = "head" if self._in_head else "body"
        self._refuse(408, "request_timeout", f"The request {phase} arrived too slowly.")

    def _refuse(self, status: int, code: str, detail: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        # No room for our answer while another is due on this connection: the one of an
        # earlier (pipelined) request, or a response already begun to this one.
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_complete
            and (self._in_head or cycle.response_started)
        ):
            self.transport.close()
            return
        body = json.dumps(problem_body(status=status, code=code, detail=detail, request_id=None))
        payload = body.encode()
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(f"content-type: {PROBLEM_CONTENT_TYPE}\r\n".encode())
        head.append(f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode())
        self.transport.write(b"".join(head) + payload)
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with the limits of ``settings`` (uvicorn builds one per
    connection from the class, so the limits are class attributes)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_head_bytes": settings.SERVER_MAX_HEADER_BYTES,
            "max_headers": settings.SERVER_MAX_HEADERS,
            "head_timeout": settings.SERVER_HEADER_TIMEOUT_SECONDS,
            "body_timeout": settings.SERVER_BODY_TIMEOUT_SECONDS,
            "keep_peer": settings.TRACING_ENABLED and settings.TRACING_TRUST_INCOMING == "proxies",
        },
    )
