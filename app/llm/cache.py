"""CachedLLM: a response cache with single flight in front of any provider.

Only deterministic requests are cached unless the caller opts in (``request.cache``); the key
is a sha256 of everything that shapes the answer, plus the caller's partition (CACHE_SCOPE:
one for everyone, or one per principal, so a caller cannot learn from a hit what another
asked). ``bypass=True`` (Cache-Control: no-cache)
neither reads nor writes. Identical cacheable requests in flight at once share one producer
task (single flight): it looks the key up, calls the provider on a miss and broadcasts every
item, so followers stream live with the first caller instead of waiting for the end; when the
last subscriber goes away the producer is cancelled, which closes the upstream call.

Storage (app/llm/cache_store.py) is Redis when given a client, else a bounded in-process
LRU; a broken Redis never fails a request (it counts as a miss).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager, aclosing, nullcontext
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from app.core.tenancy import DEFAULT_TENANT, tenant_of
from app.llm import metrics
from app.llm.cache_store import CacheStore, CacheUnavailable, MemoryCacheStore
from app.llm.protocol import LLMError, LLMProvider, provider_defaults
from app.llm.types import LLMDelta, LLMFinal, LLMRequest, LLMResponse, LLMStreamItem
from app.observability import tracing

log = structlog.get_logger(__name__)

CacheScope = Literal["global", "principal", "tenant"]

_NO_SPAN: nullcontext[None] = nullcontext()  # stateless, shared by every lookup
KEY_VERSION = 2  # bump when the key or the stored format changes (2: the partition)
_PIECES = re.compile(r"\S+\s*|\s+")


def cache_partition(scope: CacheScope, principal_id: str) -> str:
    """Who may share an entry: this principal alone, or every caller of its tenant. Tenants
    never share, whatever the scope ("" is the default tenant's, as before tenants)."""
    if scope == "principal":
        return principal_id
    tenant = tenant_of(principal_id)
    return "" if tenant == DEFAULT_TENANT else f"tenant:{tenant}"


def cache_key(*, provider: str, request: LLMRequest, partition: str = "") -> str:
    """sha256 of a canonical JSON of what shapes the answer (``request.model`` already set)
    and of the partition: callers in different partitions never share an entry."""
    messages = [message.model_dump(mode="json") for message in request.messages]
    # Tool call ids are random per run at most providers; only their pairing matters.
    ids: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            call["id"] = ids.setdefault(call["id"], f"#{len(ids)}")
        if message.get("tool_call_id") is not None:
            message["tool_call_id"] = ids.setdefault(message["tool_call_id"], f"#{len(ids)}")
    canonical = {
        "v": KEY_VERSION,
        "partition": partition,
        "provider": provider,
        "model": request.model,
        "messages": messages,
        "tools": [tool.model_dump(mode="json") for tool in request.tools],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


REPLAYS_KEPT = 256  # decoded cached answers kept for repeated hits (per process)


def replay(response: LLMResponse) -> list[LLMStreamItem]:
    """A stored answer as a stream: word-sized deltas (no delay), then the final item."""
    items: list[LLMStreamItem] = [
        LLMDelta(text=piece) for piece in _PIECES.findall(response.content)
    ]
    items.append(LLMFinal(response=response))
    return items


class _Flight:
    """One producer's items, buffered so subscribers can join late and replay from the start."""

    def __init__(self, on_abandoned: Callable[[_Flight], None]) -> None:
        self.items: list[LLMStreamItem] = []
        self.error: BaseException | None = None
        self.done = False
        self.subscribers = 0
        self.task: asyncio.Task[None] | None = None
        self._on_abandoned = on_abandoned
        self._changed = asyncio.Event()

    def push(self, item: LLMStreamItem) -> None:
        self.items.append(item)
        self._notify()

    def finish(self, error: BaseException | None = None) -> None:
        self.done = True
        self.error = error
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncGenerator[LLMStreamItem, None]:
        self.subscribers += 1
        index = 0
        try:
            while True:
                if index < len(self.items):
                    index += 1
                    yield self.items[index - 1]
                elif self.done:
                    if self.error is not None:
                        raise _for_follower(self.error)
                    return
                else:
                    await self._changed.wait()
        finally:
            self.subscribers -= 1
            if self.subscribers == 0 and not self.done:
                self._on_abandoned(self)


def _for_follower(error: BaseException) -> BaseException:
    if isinstance(error, LLMError):  # a fresh instance: each caller gets its own traceback
        return error.copy()
    if isinstance(error, asyncio.CancelledError):  # the producer was shut down, not the caller
        return LLMError(
            "the model call was cancelled on the server; retrying may help",
            code="llm_unavailable",
            retryable=True,
        )
    return error


class CachedLLM:
    """An LLMProvider-compatible front: ``complete``/``stream`` take ``bypass`` as well.

    Requests are completed with the provider's ``defaults`` (e.g. OPENAI_TEMPERATURE) before
    the key is computed, so a plug-in with its own defaults is keyed correctly too. ``scope``
    (CACHE_SCOPE) says whether the caller's ``principal_id`` partitions the cache.
    """

    def __init__(
        self,
        provider: LLMProvider,
        *,
        store: CacheStore,
        ttl: int,
        enabled: bool = True,
        scope: CacheScope = "global",
    ) -> None:
        self.provider = provider
        self.store = store
        self._ttl = ttl
        self._enabled = enabled
        self._scope: CacheScope = scope
        self._defaults = provider_defaults(provider)
        # The model a request that names none gets (its price, for a cost budget).
        self.default_model = str(getattr(provider, "model", "") or "")
        self._flights: dict[str, _Flight] = {}
        # The replay of recently served entries, by key, with the stored text it came from: a
        # repeated hit reuses the items (never changed by anyone) instead of decoding again.
        self._replays: OrderedDict[str, tuple[str, list[LLMStreamItem]]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        # Redis round trips get a span in traces; an in-process dict lookup does not.
        self._store_span = "llmcache" if not isinstance(store, MemoryCacheStore) else None

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def model(self) -> str:
        return self.provider.model

    async def complete(
        self, request: LLMRequest, *, bypass: bool = False, principal_id: str = ""
    ) -> LLMResponse:
        async with aclosing(
            self.stream(request, bypass=bypass, principal_id=principal_id)
        ) as items:
            async for item in items:
                if isinstance(item, LLMFinal):
                    return item.response
        raise LLMError("LLM stream ended without a final answer", code="llm_bad_response")

    def stream(
        self, request: LLMRequest, *, bypass: bool = False, principal_id: str = ""
    ) -> AsyncGenerator[LLMStreamItem, None]:
        """The answer as a stream; traced as ``chat {model}`` when tracing is on."""
        request = self._with_defaults(request)
        cacheable = self.cacheable(request, bypass=bypass)
        chat = tracing.chat_outcome()  # told the final answer or the error, for its span
        if cacheable:
            items = self._stream(request, principal_id=principal_id, chat=chat)
        else:  # the provider's stream itself: one generator fewer on every token's way
            metrics.record_cache("bypass")
            items = metrics.instrumented(self.provider, request, chat=chat)
        return tracing.traced_chat(
            items,
            provider=self.provider.name,
            request=request,
            server=getattr(self.provider, "host", None),
            cacheable=cacheable,
            outcome=chat,
        )

    async def _stream(
        self, request: LLMRequest, *, principal_id: str, chat: tracing.ChatOutcome | None
    ) -> AsyncGenerator[LLMStreamItem, None]:
        key = cache_key(
            provider=self.provider.name,
            request=request,
            partition=cache_partition(self._scope, principal_id),
        )
        flight = self._flights.get(key)
        follower = flight is not None
        if flight is None:
            # A stored answer is replayed right here: no flight, no task, no per-item wakeup.
            outcome, replayed = await self._lookup(key)
            if replayed is not None:
                for item in replayed:
                    if chat is not None and isinstance(item, LLMFinal):
                        chat.final(item.response)
                    yield item
                return
            flight = self._flights.get(key)  # an identical call may have started meanwhile
            follower = flight is not None
            if flight is None:
                metrics.record_cache(outcome)
                flight = self._start(key, request, writable=outcome == "miss")
        if follower:
            metrics.record_cache("hit")  # served by the identical call already in flight
        try:
            async with aclosing(flight.follow()) as items:
                async for item in items:
                    if isinstance(item, LLMFinal):
                        if follower:
                            response = item.response.model_copy(update={"cached": True})
                            metrics.record_served_from_cache(
                                provider=self.provider.name,
                                model=response.model,
                                usage=response.usage,
                            )
                            item = LLMFinal(response=response)
                        if chat is not None:
                            chat.final(item.response)
                    yield item
        except Exception as exc:
            if chat is not None:
                chat.failed(exc)
            raise

    def cacheable(self, request: LLMRequest, *, bypass: bool = False) -> bool:
        if not self._enabled or bypass or request.cache is False:
            return False
        return request.cache is True or request.temperature == 0

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.provider.aclose()

    def _span(self, operation: str) -> AbstractContextManager[object]:
        if self._store_span is None:
            return _NO_SPAN
        return tracing.redis_span(operation, self._store_span)

    def _with_defaults(self, request: LLMRequest) -> LLMRequest:
        # Fill what the caller left open, so the key and the cacheability check see the
        # values the provider will really use.
        update: dict[str, Any] = {}
        if request.model is None:
            update["model"] = self.provider.model
        defaults = self._defaults
        if defaults.temperature is not None and "temperature" not in request.model_fields_set:
            update["temperature"] = defaults.temperature
        if request.max_tokens is None and defaults.max_tokens is not None:
            update["max_tokens"] = defaults.max_tokens
        return request.model_copy(update=update) if update else request

    # --- single flight -----------------------------------------------------------------------

    async def _lookup(
        self, key: str
    ) -> tuple[Literal["hit", "miss", "error"], list[LLMStreamItem] | None]:
        """The stored answer's replay, or why there is none (a miss, or the store failed)."""
        try:
            with self._span("GET"):
                stored = await self.store.get(key)
        except CacheUnavailable:
            return "error", None
        if stored is None:
            return "miss", None
        memo = self._replays.get(key)
        if memo is not None and memo[0] == stored:  # decoded before: the same items again
            self._replays.move_to_end(key)
            items = memo[1]
        else:
            response = _decode(stored)
            if response is None:
                return "miss", None
            items = replay(response)
            self._replays[key] = (stored, items)
            if len(self._replays) > REPLAYS_KEPT:
                self._replays.popitem(last=False)
        final = items[-1]
        assert isinstance(final, LLMFinal)  # noqa: S101 - replay() ends with the final item
        metrics.record_cache("hit")
        metrics.record_served_from_cache(
            provider=self.provider.name, model=final.response.model, usage=final.response.usage
        )
        return "hit", items

    def _start(self, key: str, request: LLMRequest, *, writable: bool) -> _Flight:
        flight = _Flight(on_abandoned=lambda abandoned: self._abandon(key, abandoned))
        self._flights[key] = flight
        task = asyncio.create_task(
            self._produce(key, request, flight, writable=writable), name="llm-single-flight"
        )
        flight.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flight

    def _abandon(self, key: str, flight: _Flight) -> None:
        # Nobody is listening: forget the flight (a new caller starts afresh) and stop the
        # producer, which closes the upstream connection.
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.task is not None:
            flight.task.cancel()

    async def _produce(
        self, key: str, request: LLMRequest, flight: _Flight, *, writable: bool
    ) -> None:
        """The upstream call after a miss (looked up by the caller that started the flight);
        ``writable``: the store answered, so the answer is stored."""
        try:
            async with aclosing(metrics.instrumented(self.provider, request)) as items:
                async for item in items:
                    if isinstance(item, LLMFinal) and writable:
                        # Stored before anyone sees the final: once a caller has its
                        # answer, the next identical request is a hit.
                        await self._write(key, item.response)
                    flight.push(item)
            flight.finish()
        except asyncio.CancelledError as exc:
            flight.finish(exc)
            raise
        except Exception as exc:  # handed to every subscriber by _Flight.follow
            flight.finish(exc)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _write(self, key: str, response: LLMResponse) -> None:
        if response.finish_reason in ("error", "content_filter"):
            return
        value = response.model_dump_json(exclude={"cached"})
        try:
            with self._span("SET"):
                await self.store.set(key, value, self._ttl)
        except CacheUnavailable:
            pass  # counted by the breaker; the answer is still served


def _decode(stored: str | None) -> LLMResponse | None:
    if stored is None:
        return None
    try:
        response = LLMResponse.model_validate_json(stored)
    except ValidationError:
        log.warning("llm_cache_entry_invalid")
        return None
    return response.model_copy(update={"cached": True})
