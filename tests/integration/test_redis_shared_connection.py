"""The shared Redis connection (app/store/redis_multiplexed.py) against real redis-servers:
the same answers as redis-py's pooled client, each caller its own reply under concurrency and
cancellation, timeouts and restarts as redis-py reports them, AUTH and a database number, and
the commands that must not share a connection kept off it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ExecAbortError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.store.limits_storage import build_limits_storage
from app.store.redis_client import build_redis
from app.store.redis_multiplexed import MultiplexedRedis
from tests.conftest import SettingsFactory
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.xdist_group("redis_shared_connection")


@pytest.fixture
def server(module_redis: RedisServer) -> RedisServer:
    return module_redis


def _clients(make_settings: SettingsFactory, url: str) -> tuple[Redis, Redis]:
    shared = build_redis(make_settings(REDIS_URL=url))
    pooled = build_redis(make_settings(REDIS_URL=url, REDIS_MULTIPLEX=False))
    return shared, pooled


@pytest.fixture
async def shared(server: RedisServer, make_settings: SettingsFactory) -> AsyncIterator[Redis]:
    client = build_redis(make_settings(REDIS_URL=server.url))
    await client.flushdb()
    yield client
    await client.aclose()


def _plain(reply: Any) -> Any:
    return f"{type(reply).__name__}: {reply}" if isinstance(reply, Exception) else reply


async def _exercise(redis: Redis, prefix: str) -> list[Any]:
    """The command shapes the stores use, as one list of answers (errors by class/message)."""

    def k(name: str) -> str:
        return f"{{{prefix}}}:{name}"  # one hash slot, as our stores' keys

    out: list[Any] = [
        await redis.set(k("s"), "v", ex=60),
        await redis.get(k("s")),
        await redis.get(k("missing")),
        await redis.hgetall(k("missing")),
        await redis.incr(k("n")),
        await redis.incrbyfloat(k("f"), 0.5),
        await redis.set(k("s"), "w", nx=True),
        await redis.getdel(k("s")),
        await redis.exists(k("s"), k("n")),
    ]
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(k("h"), mapping={"a": "1", "b": "ü"})
        pipe.hgetall(k("h"))
        pipe.lpush(k("n"), "x")  # WRONGTYPE at run time: in the list
        pipe.zadd(k("z"), {"m": 1.5, "o": 2})
        pipe.zrange(k("z"), 0, -1, withscores=True)
        pipe.sadd(k("set"), "q")
        pipe.smembers(k("set"))
        pipe.expire(k("h"), 30)
        pipe.ttl(k("h"))
        out.append([_plain(r) for r in await pipe.execute(False)])
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(k("x"), {"e": "1"}, id="5-0")
        pipe.xadd(k("x"), {"e": "2"}, id="6-0")
        pipe.xrange(k("x"), count=1)
        pipe.xrevrange(k("x"))
        pipe.lpush(k("n"), "x")
        pipe.scan(0, match=f"{{{prefix}}}:z*", count=1000)
        out.append([_plain(r) for r in await pipe.execute(False)])
    for failing in (("LPUSH", k("n"), "x"), ("NOPE",)):
        try:
            await redis.execute_command(*failing)  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            out.append((type(exc).__name__, str(exc)))
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(k("n"))
            pipe.lpush(k("n"), "x")
            await pipe.execute()
    except ResponseError as exc:
        out.append(("raised", type(exc).__name__, str(exc)))
    script = redis.register_script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}")
    out.append(await script(keys=[k("n2")], args=["arg"]))
    await redis.script_flush()
    out.append(await script(keys=[k("n2")], args=["arg"]))  # NOSCRIPT: loaded again
    return out


async def test_it_answers_exactly_as_redis_pys_pooled_client(
    server: RedisServer, make_settings: SettingsFactory
) -> None:
    shared, pooled = _clients(make_settings, server.url)
    try:
        assert isinstance(shared, MultiplexedRedis)
        assert not isinstance(pooled, MultiplexedRedis)
        await shared.flushdb()
        ours = await _exercise(shared, "k")
        await shared.flushdb()
        theirs = await _exercise(pooled, "k")
        assert ours == theirs
        assert ours[1] == "v" and ours[3] == {} and ours[9][1] == {"a": "1", "b": "ü"}
        assert "WRONGTYPE" in ours[9][2]
    finally:
        await shared.aclose()
        await pooled.aclose()


async def test_every_caller_gets_its_own_reply_among_thousands(shared: Redis) -> None:
    async with shared.pipeline(transaction=False) as pipe:
        for i in range(2000):
            pipe.set(f"k{i}", f"value-{i}")
        await pipe.execute()

    async def read(i: int) -> tuple[int, Any]:
        if i % 3:
            return i, await shared.get(f"k{i}")
        async with shared.pipeline(transaction=i % 2 == 0) as pipe:
            pipe.get(f"k{i}")
            pipe.strlen(f"k{i}")
            return i, await pipe.execute()

    for i, reply in await asyncio.gather(*(read(i) for i in range(2000))):
        expected = f"value-{i}"
        assert reply == (expected if i % 3 else [expected, len(expected)])


async def test_a_cancelled_caller_leaves_the_others_in_step(shared: Redis) -> None:
    await shared.mset({f"c{i}": str(i) for i in range(300)})

    async def get(i: int) -> Any:
        return await shared.get(f"c{i}")

    tasks = [asyncio.create_task(get(i)) for i in range(300)]
    await asyncio.sleep(0)  # every command written, no reply read yet
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        if i % 2:
            assert result == str(i)
        else:
            assert isinstance(result, asyncio.CancelledError)
    assert await shared.get("c7") == "7"  # and the connection still answers in order


async def test_bad_arguments_fail_as_in_redis_py_and_lose_nothing(shared: Redis) -> None:
    with pytest.raises(DataError):
        await shared.set("k", None)  # type: ignore[arg-type]
    with pytest.raises(ResponseError, match="wrong number of arguments") as refused:
        async with shared.pipeline(transaction=True) as pipe:
            pipe.set("k", "1")
            pipe.execute_command("SET", "k")  # wrong arity: refused when queued, EXECABORT
            await pipe.execute()
    assert isinstance(refused.value.__cause__, ExecAbortError)
    assert await shared.get("k") is None  # the transaction did nothing
    with pytest.raises(NoScriptError):
        await shared.evalsha("0" * 40, 0)
    assert await shared.ping() is True


async def test_a_paused_redis_is_a_timeout_then_it_recovers(shared: Redis) -> None:
    """Nothing comes back at all: every command in flight fails, the connection is dropped and
    made again once Redis answers."""
    server_pid = await shared.info("server")
    pid = int(server_pid["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await shared.get("k")
        # 0.25 s per attempt, one retry, the grace of a late reply: well under a second
        assert time.monotonic() - started < 1.5
    finally:
        os.kill(pid, signal.SIGCONT)
    assert await shared.set("k", "after") is True
    assert await shared.get("k") == "after"


BUSY = """
local function ms(t) return t[1] * 1000 + t[2] / 1000 end
local start = ms(redis.call('TIME'))
while ms(redis.call('TIME')) - start < tonumber(ARGV[1]) do end
return ARGV[1]
"""


async def test_a_slow_command_times_out_alone_and_its_late_reply_is_dropped(
    server: RedisServer, make_settings: SettingsFactory
) -> None:
    """Redis keeps answering (the first command's reply comes back) but the second takes
    longer than the socket timeout: only its caller fails, the connection stays, and its late
    reply does not answer the next caller."""
    shared = build_redis(make_settings(REDIS_URL=server.url, REDIS_SOCKET_TIMEOUT=0.5))
    pooled = build_redis(make_settings(REDIS_URL=server.url, REDIS_MULTIPLEX=False))
    assert isinstance(shared, MultiplexedRedis)
    try:
        await shared.set("c", "c-value")
        wire = shared._wire
        assert wire is not None
        quick = asyncio.create_task(_busy(shared, 300))
        # Written apart: Redis answers the commands it read together only once all of them
        # have run, so a slow one would hold back the quick one's reply too.
        await asyncio.sleep(0.05)
        slow = asyncio.create_task(_busy(shared, 600))  # and its one retry: 600 ms again
        assert await quick == "300"
        with pytest.raises(RedisTimeoutError):
            await slow
        assert shared._wire is wire and not wire.closed  # the connection was not dropped
        await pooled.ping()  # waits until Redis is done with the late retry
        assert await shared.get("c") == "c-value"  # not the late "600"
        assert await shared.get("c") == "c-value"
    finally:
        await shared.aclose()
        await pooled.aclose()


async def _busy(redis: Redis, milliseconds: int) -> Any:
    return await redis.eval(BUSY, 0, milliseconds)


async def test_a_restarted_redis_is_reconnected_on_the_next_command(
    make_settings: SettingsFactory,
) -> None:
    server = RedisServer()
    try:
        server.start()
        client = build_redis(make_settings(REDIS_URL=server.url))
        try:
            assert await client.set("k", "v") is True
            server.stop()
            with pytest.raises(RedisConnectionError):
                await client.get("k")
            server.start()
            assert await client.get("k") is None  # a new, empty server: answered, no error
            assert await client.set("k", "again") is True
        finally:
            await client.aclose()
    finally:
        server.close()  # also when the test fails early: no redis-server left behind


async def test_callers_share_one_attempt_to_reach_a_redis_that_does_not_answer(
    make_settings: SettingsFactory,
) -> None:
    """A peer that accepts connections and never answers (a hung host behind a proxy): fifty
    callers at once wait about one handshake timeout each attempt, not fifty in turn."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    peer = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = peer.sockets[0].getsockname()[1]
    client = build_redis(make_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0"))
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.get(f"k{i}") for i in range(50)), return_exceptions=True
        )
        assert all(isinstance(result, RedisTimeoutError) for result in results), results
        # 0.25 s per handshake, one retry: about half a second for all of them
        assert time.monotonic() - started < 2.5
        assert len(accepted) <= 3  # one connection per attempt, not one per caller
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        peer.close()
        await peer.wait_closed()


async def test_password_and_database_number_are_used(make_settings: SettingsFactory) -> None:
    server = RedisServer()
    server.extra = ["--requirepass", "s3cret-pass"]
    try:
        server.start()
        url = f"redis://:s3cret-pass@127.0.0.1:{server.port}/3"
        shared, pooled = _clients(make_settings, url)
        db0 = build_redis(make_settings(REDIS_URL=url.replace("/3", "/0"), REDIS_MULTIPLEX=False))
        wrong = build_redis(make_settings(REDIS_URL=url.replace("s3cret", "wrong")))
        try:
            assert await shared.set("in-db-3", "yes") is True
            assert await pooled.get("in-db-3") == "yes"  # same database through redis-py
            assert await db0.get("in-db-3") is None
            with pytest.raises(RedisConnectionError):  # AuthenticationError is one
                await wrong.get("in-db-3")
        finally:
            for client in (shared, pooled, db0, wrong):
                await client.aclose()
    finally:
        server.close()  # also when the test fails early: no redis-server left behind


async def test_blocking_reads_take_a_pooled_connection(shared: Redis) -> None:
    """XREAD BLOCK on the shared connection would stall every caller behind it."""

    async def read() -> Any:
        return await shared.xread({"stream": "$"}, block=150)

    blocked = asyncio.create_task(read())
    await asyncio.sleep(0.02)
    started = time.monotonic()
    assert await shared.set("k", "v") is True  # not behind the blocked read
    assert time.monotonic() - started < 0.1
    assert await blocked is None or await blocked == []


async def test_the_rate_limiter_uses_the_shared_connection(
    server: RedisServer, make_settings: SettingsFactory
) -> None:
    settings = make_settings(REDIS_URL=server.url)
    redis = build_redis(settings)
    try:
        storage = build_limits_storage(settings, redis, key_prefix="rl-test")
        assert storage.bridge.storage is redis  # type: ignore[attr-defined]
        assert await storage.incr("caller", 60) == 1
        assert await storage.incr("caller", 60) == 2
        assert await storage.get("caller") == 2
    finally:
        await redis.aclose()
