"""What a Response is beyond its run: ids, and the little the run's record does not hold.

A response is a stretch of one run's event log. The first response of a run is
``resp_<run id>`` and covers the run from its start; a run that asked a question ends that
response ``incomplete``, and the response that answers it, ``resp_<run id>_<seq>``, covers the
run after the question (the event at ``seq``). Everything a response shows (output, status,
usage) is read from the run's log; this store keeps what the log does not: who may read it,
the request's own fields (instructions, metadata, previous_response_id), the run's session
(to continue the conversation) and whether it still exists (``store: false`` writes nothing;
DELETE removes it). One JSON string per response, in Redis under
``{REDIS_KEY_PREFIX}openai:response:<id>`` with its run's retention, or in memory.
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from app.services import AppServices

_RESPONSE_ID = re.compile(r"resp_([0-9a-f]{32})(?:_([1-9][0-9]{0,17}))?")


@dataclass(frozen=True, slots=True)
class ResponseRef:
    """Which run, and the seq after which this response's stretch of it starts."""

    run_id: str
    after: int = 0

    @property
    def id(self) -> str:
        return f"resp_{self.run_id}" if self.after == 0 else f"resp_{self.run_id}_{self.after}"


def parse_response_id(text: str) -> ResponseRef | None:
    match = _RESPONSE_ID.fullmatch(text)
    if match is None:
        return None
    return ResponseRef(match[1], int(match[2] or 0))


class ResponseMeta(BaseModel):
    id: str
    owner: str
    run_id: str
    after: int = 0
    model: str
    background: bool = False
    session_id: str | None = None
    instructions: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    previous_response_id: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    created_at: float = Field(default_factory=time.time)

    @property
    def ref(self) -> ResponseRef:
        return ResponseRef(self.run_id, self.after)


class ResponseStore(Protocol):
    async def save(self, meta: ResponseMeta, *, ttl_seconds: int) -> None: ...

    async def get(self, response_id: str) -> ResponseMeta | None: ...

    async def delete(self, response_id: str) -> bool: ...


class RedisResponseStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}openai:response:"

    async def save(self, meta: ResponseMeta, *, ttl_seconds: int) -> None:
        await self._redis.set(self._prefix + meta.id, meta.model_dump_json(), ex=ttl_seconds)

    async def get(self, response_id: str) -> ResponseMeta | None:
        raw = await self._redis.get(self._prefix + response_id)
        return None if raw is None else ResponseMeta.model_validate_json(raw)

    async def delete(self, response_id: str) -> bool:
        return bool(await self._redis.delete(self._prefix + response_id))


class MemoryResponseStore:
    """One process without Redis: entries expire like the runs they describe."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, ResponseMeta]] = {}

    async def save(self, meta: ResponseMeta, *, ttl_seconds: int) -> None:
        now = time.monotonic()
        # Dropping the expired ones on write keeps a long-lived process from growing.
        self._items = {k: v for k, v in self._items.items() if v[0] > now}
        self._items[meta.id] = (now + ttl_seconds, meta)

    async def get(self, response_id: str) -> ResponseMeta | None:
        entry = self._items.get(response_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    async def delete(self, response_id: str) -> bool:
        return self._items.pop(response_id, None) is not None


# Without Redis the entries live beside the process's run store (one per app), as long as it.
_memory: weakref.WeakKeyDictionary[object, MemoryResponseStore] = weakref.WeakKeyDictionary()


def response_store(services: AppServices) -> ResponseStore:
    if services.redis is not None:
        return RedisResponseStore(services.redis, prefix=services.settings.REDIS_KEY_PREFIX)
    store = _memory.get(services.runs.store)
    if store is None:
        store = _memory[services.runs.store] = MemoryResponseStore()
    return store


def retention_seconds(services: AppServices, *, background: bool) -> int:
    """As long as the run's record and log are kept (a foreground run may wait for an
    answer up to its deadline first)."""
    settings = services.settings
    if background:
        return settings.TASK_RETENTION_SECONDS
    return settings.RUN_RETENTION_SECONDS + int(settings.RUN_TIMEOUT_SECONDS)
