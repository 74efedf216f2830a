"""One Redis connection that every coroutine of the process writes to.

Redis answers a connection's commands in the order it reads them, so concurrent callers can
share one socket: each write queues its reply slot, replies fill the slots first in, first out
(ioredis, Lettuce and StackExchange.Redis work this way by default). No pool checkout, no lock,
no per-command stream reads: hiredis parses whatever arrived in one pass. redis-py's pooled path
costs ~160 us of CPU per command on our machine, this ~12 us at a loaded server's concurrency
(docs/decisions.md "Multiplexed Redis connection").

The socket timeout is one timer for the whole connection, armed at the oldest reply's
deadline. A reply still missing once the loop has read its sockets fails its caller with
``TimeoutError``; its slot stays in line, so the late reply, when it comes, is dropped and
every other caller still gets its own. When nothing at all has come back since that command
was written, Redis is gone quiet: every command in flight fails and the connection is dropped
(the next command connects again), as redis-py disconnects on a timeout. A connection Redis
closes fails its commands with ``ConnectionError``. A caller that stops waiting (cancelled)
also leaves its slot to be filled and dropped. Redis sends the replies to the commands it read
in one go once all of them have run, so a slow command (a long script) holds back the replies
written with it; it holds up every connection's commands while it runs anyway.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

_INCOMPLETE = object()  # hiredis's answer when a reply has not fully arrived
_GRACE = 0.01  # seconds a late reply gets once the loop has read its sockets


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP, as redis-py packs it with hiredis: a command name with a space in
    it ("SCRIPT LOAD") is two words on the wire."""
    name = args[0]
    if isinstance(name, str) and " " in name:
        args = (*name.split(), *args[1:])
    try:
        return hiredis.pack_command(args)  # type: ignore[no-any-return]
    except TypeError as exc:  # None, bool: what redis-py refuses too
        raise DataError(str(exc)) from exc


class _Slot:
    """Where the replies of one write go: one for a command, n for a pipeline."""

    __slots__ = ("deadline", "future", "late", "left", "replies")

    def __init__(self, future: asyncio.Future[Any], count: int, deadline: float) -> None:
        self.future = future
        self.left = count
        self.replies: list[Any] | None = [] if count > 1 else None
        self.deadline = deadline
        self.late = False  # seen past its deadline once: one more look, then a timeout


class Wire(asyncio.Protocol):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        name: str,
        decoding: dict[str, str],
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._name = name
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=BaseParser.parse_error,  # NOSCRIPT -> NoScriptError, as redis-py maps it
            notEnoughData=_INCOMPLETE,
            **decoding,
        )
        self._slots: deque[_Slot] = deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._heard_at = loop.time()  # when Redis last sent anything
        self.closed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._heard_at = self._loop.time()
        reader = self._reader
        reader.feed(data)
        slots = self._slots
        while True:
            try:
                reply = reader.gets()
            except InvalidResponse as exc:
                self._fail(RedisConnectionError(f"Protocol error from {self._name}: {exc}"))
                return
            if reply is _INCOMPLETE:
                return
            if isinstance(reply, hiredis.PushNotification):
                continue  # RESP3 out-of-band message, answers no command
            if not slots:
                self._fail(RedisConnectionError(f"An unexpected reply from {self._name}"))
                return
            slot = slots[0]
            if slot.replies is None:
                slots.popleft()
                if not slot.future.done():
                    slot.future.set_result(reply)
                continue
            slot.replies.append(reply)
            slot.left -= 1
            if slot.left == 0:
                slots.popleft()
                if not slot.future.done():
                    slot.future.set_result(slot.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Connection to {self._name} closed"))

    # use

    def send(self, data: bytes, count: int = 1) -> asyncio.Future[Any]:
        """Write ``data`` (``count`` commands); the future gets the reply, or the list of
        ``count`` replies, error replies as exception objects."""
        if self.closed or self._transport is None:
            raise RedisConnectionError(f"Connection to {self._name} closed")
        future = self._loop.create_future()
        timeout = self._timeout
        deadline = self._loop.time() + timeout if timeout else 0.0
        self._slots.append(_Slot(future, count, deadline))
        self._transport.write(data)
        if timeout and self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
        return future

    def close(self) -> None:
        self._fail(RedisConnectionError(f"Connection to {self._name} closed by the client"))

    def _check_deadline(self) -> None:
        self._timer = None
        now = self._loop.time()
        look_again = False
        for slot in self._slots:  # oldest first: deadlines only grow along the line
            if slot.deadline > now:
                break
            if slot.future.done():
                continue  # already answered (timed out, cancelled): waits for its reply
            if not slot.late:
                # Late, or the loop was too busy to read a reply waiting in the socket: one
                # more look after the loop has polled its sockets.
                slot.late = look_again = True
            elif self._heard_at < slot.deadline - (self._timeout or 0):
                self._fail(RedisTimeoutError(f"Timeout reading from {self._name}"))
                return  # nothing came back since it was written: the connection is dead
            else:
                slot.future.set_exception(RedisTimeoutError(f"Timeout reading from {self._name}"))
        if look_again:
            self._timer = self._loop.call_later(_GRACE, self._check_deadline)
            return
        for slot in self._slots:
            if not slot.future.done():
                self._timer = self._loop.call_at(max(slot.deadline, now), self._check_deadline)
                return

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        slots, self._slots = self._slots, deque()
        for slot in slots:
            if not slot.future.done():
                slot.future.set_exception(error)
        if self._transport is not None:
            self._transport.abort()


async def open_wire(
    connection: Any,
    *,
    reply_timeout: float | None,
    connect_timeout: float | None,
) -> Wire:
    """Connect as the redis-py ``connection`` (not connected, just its settings) would: TCP
    or a Unix socket, TLS from its context, then HELLO (its RESP version, with AUTH), the
    client name and SELECT in one round trip."""
    loop = asyncio.get_running_loop()
    path = getattr(connection, "path", None)
    name = path or f"{connection.host}:{connection.port}"
    ssl_context = connection.ssl_context.get() if hasattr(connection, "ssl_context") else None
    encoder = connection.encoder
    decoding = (
        {"encoding": encoder.encoding, "errors": encoder.encoding_errors}
        if encoder.decode_responses
        else {}
    )
    factory = lambda: Wire(loop, reply_timeout, name, decoding)  # noqa: E731
    try:
        async with asyncio.timeout(connect_timeout):
            if path:
                _, wire = await loop.create_unix_connection(factory, path)
            else:
                _, wire = await loop.create_connection(
                    factory, connection.host, connection.port, ssl=ssl_context
                )
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"Error connecting to {name}: {exc}") from exc
    handshake = _handshake(connection)
    if handshake:
        replies = await wire.send(b"".join(pack(args) for args in handshake), len(handshake))
        for reply in replies if len(handshake) > 1 else [replies]:
            if isinstance(reply, Exception):
                wire.close()
                raise reply
    return wire


def _handshake(connection: Any) -> list[tuple[Any, ...]]:
    """What redis-py's ``on_connect`` sends, for the same replies and response callbacks."""
    commands: list[tuple[Any, ...]] = []
    username, password = connection.username, connection.password
    auth = ("AUTH", username or "default", password) if password else ()
    if int(connection.protocol) == 3:
        commands.append(("HELLO", 3, *auth))
    elif password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if connection.db:
        commands.append(("SELECT", connection.db))
    if connection.client_name:
        commands.append(("CLIENT SETNAME", connection.client_name))
    return commands
