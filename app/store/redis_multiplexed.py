"""redis-py's client with its commands and pipelines sent over one shared connection.

Everything the app calls stays redis-py's (command methods, scripts, response parsing, pub/sub,
error classes); what changes is how a command reaches Redis: written to the process's one
``Wire`` (app/store/redis_wire.py) instead of a pooled connection. What needs a connection of
its own still takes one from the pool: blocking reads, WATCH transactions, pub/sub, replies
that must stay bytes. Used for one Redis (with or without TLS); a cluster or a Sentinel-watched
primary keeps redis-py's clients, which route per node or follow failovers. A write over
``SHARED_MAX_BYTES`` takes a pooled connection too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.store.redis_wire import Wire, open_wire, pack

# Commands that hold their connection until something happens: never on the shared one.
_BLOCKING = frozenset(
    {"BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT"}
)
_STREAM_READS = frozenset({"XREAD", "XREADGROUP"})
_RETRY_PAUSE = 0.01  # redis-py's policy in build_redis: one quick retry
# A write this big (a run log's burst, a long session) takes a pooled connection: on the
# shared one every caller behind it would wait while megabytes go through, and its reply
# would be due before Redis has read it all.
SHARED_MAX_BYTES = 256 * 1024
_MULTI, _EXEC = pack(("MULTI",)), pack(("EXEC",))


def _needs_own_connection(args: Sequence[Any], options: Mapping[str, Any]) -> bool:
    name = args[0]
    if name in _BLOCKING:
        return True
    if name in _STREAM_READS and (b"BLOCK" in args or "BLOCK" in args):
        return True
    return NEVER_DECODE in options


class MultiplexedRedis(Redis):
    """``Redis`` whose commands share one connection; its pool serves the rest."""

    _wire: Wire | None = None
    _connecting: asyncio.Future[Wire] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.connection is not None or _needs_own_connection(args, options):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        data = pack(args)
        if len(data) > SHARED_MAX_BYTES:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        reply = await self.exchange(data, 1)
        if isinstance(reply, Exception):
            if isinstance(reply, ResponseError) and EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        return await self.parsed(args[0], reply, options)

    async def parsed(self, name: str, reply: Any, options: dict[str, Any]) -> Any:
        """The reply as redis-py's command method returns it (its response callback)."""
        callback = self.response_callbacks.get(name)
        if callback is None:
            return reply
        if options:
            options = {k: v for k, v in options.items() if k != "keys" and k != EMPTY_RESPONSE}
        value = callback(reply, **options)
        return await value if inspect.isawaitable(value) else value

    async def exchange(self, data: bytes, count: int) -> Any:
        """Send ``count`` packed commands, get their replies. No connection yet (or a dropped
        one): open it first. A command the connection failed (lost, timed out) is sent once
        more on a fresh or still live one (redis-py's retry policy)."""
        wire = self._wire
        if wire is None or wire.closed:
            wire = await self._connect()
        try:
            return await wire.send(data, count)
        except (RedisConnectionError, RedisTimeoutError):
            await asyncio.sleep(_RETRY_PAUSE)
            return await (await self._connect()).send(data, count)

    async def _connect(self) -> Wire:
        """The live connection, or the one attempt to open it that every caller shares: with
        Redis unreachable, a hundred callers wait one connect timeout, not a hundred in turn."""
        wire = self._wire
        if wire is not None and not wire.closed:
            return wire
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(_retrieved)
        return await asyncio.shield(self._connecting)  # a caller that leaves ends no attempt

    async def _open(self) -> Wire:
        pool = self.connection_pool
        settings = pool.connection_class(**pool.connection_kwargs)
        self._wire = await open_wire(
            settings,
            reply_timeout=settings.socket_timeout,
            connect_timeout=settings.socket_connect_timeout,
        )
        return self._wire

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return MultiplexedPipeline(self, transaction, shard_hint)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        await super().aclose(close_connection_pool)


class MultiplexedPipeline(Pipeline):
    """A pipeline whose commands go out in one write on the shared connection (between MULTI
    and EXEC for a transaction). WATCH and script registration keep redis-py's path."""

    def __init__(self, client: MultiplexedRedis, transaction: bool, shard_hint: str | None):
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self._client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if (
            not stack
            or self.watching
            or self.connection is not None
            or self.scripts
            or any(_needs_own_connection(args, options) for args, options in stack)
        ):
            return await super().execute(raise_on_error)
        data = _packed(stack)
        if len(data) > SHARED_MAX_BYTES:
            return await super().execute(raise_on_error)
        self.command_stack = []
        if self.is_transaction or self.explicit_transaction:
            self.explicit_transaction = False
            return await self._transaction(stack, data, raise_on_error)
        return await self._pipeline(stack, data, raise_on_error)

    async def _pipeline(self, stack: list[Any], data: bytes, raise_on_error: bool) -> list[Any]:
        replies = await self._client.exchange(data, len(stack))
        if len(stack) == 1:
            replies = [replies]
        response = []
        for (args, options), reply in zip(stack, replies, strict=True):
            response.append(await self._one(args, options, reply))
        if raise_on_error:
            self.raise_first_error(stack, response)
        return response

    async def _transaction(self, stack: list[Any], data: bytes, raise_on_error: bool) -> list[Any]:
        data = _MULTI + data + _EXEC
        replies = await self._client.exchange(data, len(stack) + 2)
        queued, executed = replies[1:-1], replies[-1]
        errors = []
        for i, ((args, _), reply) in enumerate(zip(stack, queued, strict=True)):
            if isinstance(reply, ResponseError):  # refused when queued
                self.annotate_exception(reply, i + 1, args)
                errors.append((i, reply))
        if isinstance(executed, ExecAbortError):
            if errors:  # the first refused command says why, as redis-py raises it
                raise errors[0][1] from executed
            raise executed
        if isinstance(executed, Exception):
            raise executed
        if executed is None:  # only with WATCH, which takes redis-py's path
            raise WatchError("Watched variable changed.")
        response = list(executed)
        for i, error in errors:
            response.insert(i, error)
        if raise_on_error:
            self.raise_first_error(stack, response)
        pairs = zip(stack, response, strict=True)
        return [await self._one(args, options, reply) for (args, options), reply in pairs]

    async def _one(self, args: Sequence[Any], options: dict[str, Any], reply: Any) -> Any:
        if isinstance(reply, Exception):
            if isinstance(reply, ResponseError):
                if EMPTY_RESPONSE in options:
                    return options[EMPTY_RESPONSE]
                return reply  # in the list, as redis-py gives it
            raise reply  # "max number of clients" and the like: no reply at all
        return await self._client.parsed(args[0], reply, options)


def _retrieved(attempt: asyncio.Future[Wire]) -> None:
    if not attempt.cancelled():
        attempt.exception()  # every caller may have left: not an "unretrieved" error


def _packed(stack: list[Any]) -> bytes:
    return b"".join([pack(args) for args, _ in stack])
