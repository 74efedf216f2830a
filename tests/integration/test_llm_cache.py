"""CachedLLM against a real redis-server (and the in-memory store): hits, misses, bypass, TTL,
stream replay, single flight, Redis outages with the circuit breaker, and metrics."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from app.core.config import Settings
from app.llm.cache import CachedLLM, cache_key
from app.llm.cache_store import MemoryCacheStore, NearCacheStore, RedisCacheStore
from app.llm.factory import build_cache_store, build_llm
from app.llm.offline import OfflineProvider
from app.llm.protocol import LLMError
from app.llm.types import (
    ChatMessage,
    LLMDelta,
    LLMFinal,
    LLMRequest,
    LLMResponse,
    LLMStreamItem,
    ToolCall,
    ToolSpec,
)
from app.store.redis_client import build_redis
from tests.conftest import SettingsFactory
from tests.support.redis_server import RedisServer


class CountingProvider:
    """An OfflineProvider that counts upstream calls (and can be told to fail)."""

    def __init__(self, *, latency_ms: int = 0, fail: LLMError | None = None) -> None:
        self.inner = OfflineProvider(latency_ms=latency_ms, tokens_per_second=0)
        self.name = self.inner.name
        self.model = self.inner.model
        self.calls = 0
        self.fail = fail

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        return await self.inner.complete(request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamItem]:
        self.calls += 1
        if self.fail is not None:
            await asyncio.sleep(0.05)
            raise self.fail
        async for item in self.inner.stream(request):
            yield item

    async def aclose(self) -> None:
        await self.inner.aclose()


def ask(text: str = "What is a cache?", **fields: Any) -> LLMRequest:
    return LLMRequest(messages=[ChatMessage(role="user", content=text)], **fields)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def cache_counts() -> dict[str, float]:
    return {
        result: sample("llm_cache_requests_total", result=result)
        for result in ("hit", "miss", "bypass", "error")
    }


def moved(before: dict[str, float]) -> dict[str, float]:
    after = cache_counts()
    return {result: after[result] - before[result] for result in after}


async def collect(llm: CachedLLM, request: LLMRequest, **kwargs: Any) -> list[LLMStreamItem]:
    return [item async for item in llm.stream(request, **kwargs)]


@pytest.fixture
def settings(make_settings: SettingsFactory, running_redis: RedisServer) -> Settings:
    return make_settings(REDIS_URL=running_redis.url)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = build_redis(settings)
    yield client
    await client.aclose()


@pytest.fixture(params=["redis", "memory"])
def store(
    request: pytest.FixtureRequest, settings: Settings, redis: Redis
) -> RedisCacheStore | MemoryCacheStore:
    if request.param == "redis":
        return RedisCacheStore(redis, prefix=f"{settings.REDIS_KEY_PREFIX}llmcache:")
    return MemoryCacheStore()


@pytest.fixture
async def llm(store: RedisCacheStore | MemoryCacheStore) -> AsyncIterator[CachedLLM]:
    cached = CachedLLM(CountingProvider(), store=store, ttl=60)
    yield cached
    await cached.aclose()


def calls(llm: CachedLLM) -> int:
    provider = llm.provider
    assert isinstance(provider, CountingProvider)
    return provider.calls


async def test_miss_then_hit_through_the_factory(
    settings: Settings, redis: Redis, key_prefix: str
) -> None:
    llm = build_llm(settings, redis)
    counting = CountingProvider()
    llm.provider = counting
    before = cache_counts()
    saved = sample("llm_cache_tokens_saved_total")
    spent = sample("llm_tokens_total", provider="offline", kind="completion")
    served = sample("llm_requests_total", provider="offline", model="offline", outcome="cached")

    first = await llm.complete(ask())
    second = await llm.complete(ask())

    assert counting.calls == 1
    assert not first.cached and second.cached
    assert second.model_dump(exclude={"cached"}) == first.model_dump(exclude={"cached"})
    keys = await redis.keys(f"{key_prefix}llmcache:*")
    assert len(keys) == 1 and 0 < await redis.ttl(keys[0]) <= settings.CACHE_TTL
    assert moved(before) == {"hit": 1, "miss": 1, "bypass": 0, "error": 0}
    assert sample("llm_cache_tokens_saved_total") - saved == first.usage.total_tokens
    completion = sample("llm_tokens_total", provider="offline", kind="completion") - spent
    assert completion == first.usage.completion_tokens  # the hit spent nothing
    cached_now = sample("llm_requests_total", provider="offline", model="offline", outcome="cached")
    assert cached_now - served == 1
    await llm.aclose()


async def test_bypass_neither_reads_nor_writes(llm: CachedLLM) -> None:
    before = cache_counts()
    await llm.complete(ask(), bypass=True)
    await llm.complete(ask(cache=False))
    assert calls(llm) == 2 and moved(before)["bypass"] == 2

    await llm.complete(ask())  # now it is stored
    fresh = await llm.complete(ask(), bypass=True)
    assert calls(llm) == 4 and not fresh.cached  # a stored answer is not read either
    assert (await llm.complete(ask())).cached


async def test_non_deterministic_requests_are_not_cached_unless_asked(llm: CachedLLM) -> None:
    warm = ask(temperature=0.7)
    await llm.complete(warm)
    assert not (await llm.complete(warm)).cached
    assert calls(llm) == 2

    opted_in = ask(temperature=0.7, cache=True)
    await llm.complete(opted_in)
    assert (await llm.complete(opted_in)).cached
    assert calls(llm) == 3


async def test_entries_expire_after_the_ttl(store: RedisCacheStore | MemoryCacheStore) -> None:
    llm = CachedLLM(CountingProvider(), store=store, ttl=1)
    await llm.complete(ask())
    assert (await llm.complete(ask())).cached
    await asyncio.sleep(1.2)  # ttl=1
    assert not (await llm.complete(ask())).cached
    assert calls(llm) == 2
    await llm.aclose()


async def test_cached_stream_replays_as_deltas(llm: CachedLLM) -> None:
    live = await collect(llm, ask("Explain streaming replay"))
    replayed = await collect(llm, ask("Explain streaming replay"))

    final = replayed[-1]
    assert isinstance(final, LLMFinal) and final.response.cached
    deltas = [item.text for item in replayed if isinstance(item, LLMDelta)]
    assert len(deltas) > 5 and "".join(deltas) == final.response.content
    assert [i for i in live if isinstance(i, LLMDelta)] == [
        i for i in replayed if isinstance(i, LLMDelta)
    ]
    assert calls(llm) == 1


async def test_tool_call_answers_are_cached_too(llm: CachedLLM) -> None:
    calculator = ToolSpec(name="calculator", description="math", parameters={"type": "object"})
    request = ask("what is 6*7?", tools=[calculator])
    first = await llm.complete(request)
    second = await llm.complete(request)
    assert second.cached and second.tool_calls == first.tool_calls
    assert second.finish_reason == "tool_calls"


async def test_single_flight_one_upstream_call_for_100_concurrent_requests(
    settings: Settings, redis: Redis
) -> None:
    provider = CountingProvider(latency_ms=100)
    store = RedisCacheStore(redis, prefix=f"{settings.REDIS_KEY_PREFIX}llmcache:")
    llm = CachedLLM(provider, store=store, ttl=60)
    before = cache_counts()

    async def by_stream() -> LLMResponse:
        items = await collect(llm, ask("popular question"))
        final = items[-1]
        assert isinstance(final, LLMFinal)
        assert "".join(i.text for i in items if isinstance(i, LLMDelta)) == final.response.content
        return final.response

    jobs = [llm.complete(ask("popular question")) for _ in range(50)]
    jobs += [by_stream() for _ in range(50)]
    responses = await asyncio.gather(*jobs)

    assert provider.calls == 1
    assert len({r.content for r in responses}) == 1
    assert sum(not r.cached for r in responses) == 1
    assert moved(before) == {"hit": 99, "miss": 1, "bypass": 0, "error": 0}
    await llm.aclose()


async def test_single_flight_survives_the_first_caller_leaving() -> None:
    provider = CountingProvider(latency_ms=100)
    llm = CachedLLM(provider, store=MemoryCacheStore(), ttl=60)
    leader = asyncio.create_task(llm.complete(ask()))
    await asyncio.sleep(0.02)
    follower = asyncio.create_task(llm.complete(ask()))
    await asyncio.sleep(0.02)
    leader.cancel()

    response = await follower
    assert response.content and provider.calls == 1
    assert (await llm.complete(ask())).cached


async def test_single_flight_shares_an_upstream_error_and_does_not_cache_it() -> None:
    provider = CountingProvider(fail=LLMError("down", code="llm_unavailable", retryable=True))
    llm = CachedLLM(provider, store=MemoryCacheStore(), ttl=60)
    results = await asyncio.gather(
        *[llm.complete(ask()) for _ in range(10)], return_exceptions=True
    )

    assert provider.calls == 1
    assert all(isinstance(r, LLMError) and r.code == "llm_unavailable" for r in results)
    provider.fail = None
    assert not (await llm.complete(ask())).cached and provider.calls == 2


async def test_in_memory_store_when_no_redis(make_settings: SettingsFactory) -> None:
    llm = build_llm(make_settings(OFFLINE_LATENCY_MS=0, OFFLINE_TOKENS_PER_SECOND=0), None)
    assert isinstance(llm.store, MemoryCacheStore)
    await llm.complete(ask())
    assert (await llm.complete(ask())).cached

    small = MemoryCacheStore(max_entries=2)
    for key in ("a", "b", "c"):
        await small.set(key, key, ttl=60)
    assert await small.get("a") is None and await small.get("c") == "c"
    await llm.aclose()


async def test_the_in_process_store_is_bounded_by_the_text_it_holds() -> None:
    store = MemoryCacheStore(max_entries=100, max_chars=10)
    await store.set("a", "x" * 4, ttl=60)
    await store.set("b", "y" * 4, ttl=60)
    await store.get("a")  # a is now the most recently used
    await store.set("c", "z" * 4, ttl=60)  # 12 characters: the least recently used goes
    assert [await store.get(key) for key in "abc"] == ["xxxx", None, "zzzz"]
    await store.set("a", "w" * 6, ttl=60)  # replacing an entry counts only the new text
    assert [await store.get(key) for key in "ac"] == ["wwwwww", "zzzz"]
    await store.set("huge", "h" * 11, ttl=60)  # larger than the budget: not kept, none lost
    assert await store.get("huge") is None
    assert [await store.get(key) for key in "ac"] == ["wwwwww", "zzzz"]


async def test_settings_bound_the_local_copies_in_megabytes(
    make_settings: SettingsFactory, running_redis: RedisServer, redis: Redis
) -> None:
    store = build_cache_store(
        make_settings(REDIS_URL=running_redis.url, CACHE_LOCAL_MAX_MB=1), redis
    )
    assert isinstance(store, NearCacheStore)
    megabyte = "m" * 2**20
    await store.set("fits", megabyte, ttl=60)
    await store.set("too-big", megabyte + "!", ttl=60)
    before = store.local_hits
    assert await store.get("fits") == megabyte  # from memory
    assert await store.get("too-big") == megabyte + "!"  # from Redis only
    assert store.local_hits == before + 1


async def test_cache_disabled_goes_straight_to_the_provider(
    make_settings: SettingsFactory, running_redis: RedisServer, redis: Redis, key_prefix: str
) -> None:
    settings = make_settings(REDIS_URL=running_redis.url, CACHE_ENABLED=False)
    llm = build_llm(settings, redis)
    counting = CountingProvider()
    llm.provider = counting
    before = cache_counts()
    await llm.complete(ask())
    assert not (await llm.complete(ask())).cached

    assert counting.calls == 2 and moved(before)["bypass"] == 2
    assert await redis.keys(f"{key_prefix}llmcache:*") == []
    await llm.aclose()


async def test_a_corrupt_entry_is_a_miss_and_is_replaced(
    settings: Settings, redis: Redis, key_prefix: str
) -> None:
    llm = CachedLLM(
        CountingProvider(),
        store=RedisCacheStore(redis, prefix=f"{key_prefix}llmcache:"),
        ttl=60,
    )
    request = ask(model="offline")
    await redis.set(f"{key_prefix}llmcache:{cache_key(provider='offline', request=request)}", "{")
    assert not (await llm.complete(request)).cached
    assert (await llm.complete(request)).cached


def test_cache_key_covers_what_shapes_the_answer() -> None:
    base = ask(model="m")
    key = cache_key(provider="p", request=base)
    assert key == cache_key(provider="p", request=ask(model="m"))
    for other in (
        ask(model="n"),
        ask("other", model="m"),
        ask(model="m", temperature=0.5),
        ask(model="m", max_tokens=5),
        ask(model="m", tools=[ToolSpec(name="t", description="d", parameters={})]),
    ):
        assert cache_key(provider="p", request=other) != key
    assert cache_key(provider="q", request=base) != key
    assert cache_key(provider="p", request=ask(model="m", cache=True)) == key  # a switch only

    def with_call(call_id: str) -> LLMRequest:
        call = ToolCall(id=call_id, name="calculator", arguments={"expression": "1+1"})
        return LLMRequest(
            model="m",
            messages=[
                ChatMessage(role="assistant", tool_calls=[call]),
                ChatMessage(role="tool", content="2", tool_call_id=call_id),
            ],
        )

    # Providers make up new call ids each run; the conversation is the same.
    assert cache_key(provider="p", request=with_call("x1")) == cache_key(
        provider="p", request=with_call("y2")
    )


# --- Redis outages ---------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)  # in case a test paused it
    server.close()


def breaker_state(store: RedisCacheStore) -> str:
    return store.breaker.state


async def run_sequential(llm: CachedLLM, count: int, tag: str) -> float:
    started = time.monotonic()
    for number in range(count):
        response = await llm.complete(ask(f"{tag} question {number}"))
        assert response.content
    return time.monotonic() - started


async def test_redis_stopped_then_restarted(
    make_settings: SettingsFactory, own_redis: RedisServer, key_prefix: str
) -> None:
    # A stopped Redis refuses connections at once: the subject is that refusal and the
    # recovery, not a loaded machine's 0.25 s timeouts (which once failed the warm-up write).
    settings = make_settings(
        REDIS_URL=own_redis.url, REDIS_SOCKET_TIMEOUT=2.0, REDIS_CONNECT_TIMEOUT=2.0
    )
    redis = build_redis(settings)
    store = RedisCacheStore(
        redis, prefix=f"{key_prefix}llmcache:", reset_timeout=0.5, op_timeout=2.0
    )
    llm = CachedLLM(CountingProvider(), store=store, ttl=60)
    baseline = CachedLLM(CountingProvider(), store=MemoryCacheStore(), ttl=60, enabled=False)
    no_redis = await run_sequential(baseline, 50, "baseline")

    await llm.complete(ask())
    assert (await llm.complete(ask())).cached
    own_redis.stop()
    before = cache_counts()
    with_dead_redis = await run_sequential(llm, 50, "outage")

    assert moved(before)["error"] == 50  # every lookup failed or was skipped; none failed a call
    assert breaker_state(store) == "open"
    assert with_dead_redis - no_redis < 1.0, (with_dead_redis, no_redis)

    own_redis.start()
    await asyncio.sleep(0.6)  # past the breaker's reset timeout
    assert not (await llm.complete(ask("after the outage"))).cached  # the probe: a miss, stored
    assert breaker_state(store) == "closed"
    assert (await llm.complete(ask("after the outage"))).cached
    await llm.aclose()
    await redis.aclose()


async def test_hung_redis_costs_a_bounded_delay(
    make_settings: SettingsFactory, own_redis: RedisServer, key_prefix: str
) -> None:
    # A paused Redis accepts connections and never answers: only timeouts end each try.
    settings = make_settings(
        REDIS_URL=own_redis.url, REDIS_SOCKET_TIMEOUT=0.1, REDIS_CONNECT_TIMEOUT=0.1
    )
    redis = build_redis(settings)
    store = RedisCacheStore(redis, prefix=f"{key_prefix}llmcache:", reset_timeout=5.0)
    llm = CachedLLM(CountingProvider(), store=store, ttl=60)
    await llm.complete(ask())
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        elapsed = await run_sequential(llm, 30, "hung")
    finally:
        own_redis.process.send_signal(signal.SIGCONT)

    # Three timed-out lookups open the breaker; the other 27 skip Redis entirely.
    assert breaker_state(store) == "open"
    assert elapsed < 1.5
    await llm.aclose()
    await redis.aclose()


# --- the near cache: each process keeps what it read or wrote, never past Redis's expiry ----


def near_store(settings: Settings, redis: Redis, *, local_seconds: float = 10) -> NearCacheStore:
    shared = RedisCacheStore(redis, prefix=f"{settings.REDIS_KEY_PREFIX}llmcache:")
    return NearCacheStore(shared, local_seconds=local_seconds, max_entries=16)


async def test_the_factory_puts_a_near_cache_in_front_of_redis_unless_told_not_to(
    make_settings: SettingsFactory, running_redis: RedisServer, redis: Redis
) -> None:
    near = build_llm(make_settings(REDIS_URL=running_redis.url), redis)
    plain = build_llm(make_settings(REDIS_URL=running_redis.url, CACHE_LOCAL_SECONDS=0), redis)
    assert isinstance(near.store, NearCacheStore)
    assert isinstance(plain.store, RedisCacheStore)


async def test_a_repeated_hit_is_served_without_redis(
    make_settings: SettingsFactory, own_redis: RedisServer
) -> None:
    settings = make_settings(REDIS_URL=own_redis.url)
    redis = build_redis(settings)
    llm = CachedLLM(CountingProvider(), store=near_store(settings, redis), ttl=60)
    first = await llm.complete(ask("kept near"))
    own_redis.stop()  # from here on, only the process's own copy can answer
    try:
        again = await llm.complete(ask("kept near"))
        assert again.cached and again.content == first.content
        assert calls(llm) == 1
    finally:
        own_redis.start()
        await llm.aclose()
        await redis.aclose()


async def test_what_one_process_writes_another_reads_from_redis(
    settings: Settings, redis: Redis
) -> None:
    writer = CachedLLM(CountingProvider(), store=near_store(settings, redis), ttl=60)
    reader = CachedLLM(CountingProvider(), store=near_store(settings, redis), ttl=60)
    written = await writer.complete(ask("shared across replicas"))
    read = await reader.complete(ask("shared across replicas"))
    assert read.cached and read.content == written.content and calls(reader) == 0
    await writer.aclose()
    await reader.aclose()


async def test_a_local_copy_never_outlives_the_redis_entry(
    settings: Settings, redis: Redis
) -> None:
    store = near_store(settings, redis, local_seconds=60)
    key = f"{settings.REDIS_KEY_PREFIX}llmcache:short-lived"
    await redis.set(key, "answer", px=300)  # another replica's entry, about to expire
    assert await store.get("short-lived") == "answer"
    deadline = time.monotonic() + 3
    while await redis.exists(key) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await store.get("short-lived") is None  # gone from Redis: gone here too
    await store.set("written", "value", ttl=1)  # our own write: at most its TTL
    await asyncio.sleep(1.1)
    assert await store.get("written") is None
