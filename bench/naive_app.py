"""A comparator of bench/agent_path.py: the naive FastAPI agent service (JWT + Redis cache).

What a FastAPI course's "production-ready" agent service lab builds (issue 11's table: "JWT
+ Redis, no middleware"), written async where the lab is sync (a sync Redis client or a sync
dependency would put every request through a thread and flatter nobody): no middleware;
every agent route depends on ``HTTPBearer`` and decodes the bearer JWT with python-jose
(HS256, ``NAIVE_SECRET_KEY``) on every request, 401 on a bad one; a ``CacheService`` on
``redis.asyncio`` (``NAIVE_REDIS_URL``) keyed ``cache:agent:{md5 of the request's fields as
JSON}``, values JSON with a TTL (``NAIVE_CACHE_TTL``, 3600 s), off if Redis does not answer
at start (the lab's graceful fallback).

- ``POST /invoke`` ``{"input": str, "store": bool}``: the cache is read unless the request
  says ``Cache-Control: no-cache``; a hit answers the stored JSON with a fresh ``run_id``; a
  miss runs the model, stores the answer and returns it. ``X-Cache: hit|miss`` says which
  (the harness's precheck reads it).
- ``POST /stream``: the JWT check, then bench/bare_app.py's stream (the lab streams a fresh
  run, no cache).
- ``GET /health/live``.

The model, its answer and its frames are bench/bare_app.py's, called as they are, so the
same bytes cross the socket; so is its environment (BARE_TOKENS, BARE_LATENCY_MS,
BARE_TOKENS_PER_SECOND). The bench mints the token with the same secret: no login route.

Run: ``python -m bench.naive_app --port N`` (one uvicorn worker, uvloop + httptools,
no access log, like bench/bare_app.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import JWTError, jwt
from pydantic import BaseModel
from redis.exceptions import RedisError

from bench import bare_app
from bench.bare_app import RunBody

logger = logging.getLogger("naive_app")

SECRET_KEY = os.environ.get("NAIVE_SECRET_KEY", "")
ALGORITHM = "HS256"
REDIS_URL = os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_TTL = int(os.environ.get("NAIVE_CACHE_TTL", "3600"))


class CacheService:
    """The lab's cache: JSON values under ``cache:{prefix}:{md5}`` with a TTL. Errors are
    logged and read as a miss, as the lab's are."""

    def __init__(self, url: str, ttl: int) -> None:
        self.client = aioredis.from_url(url, decode_responses=True)
        self.ttl = ttl
        self.enabled = True

    async def connect(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            logger.warning("Redis unavailable, caching disabled: %s", exc)
            self.enabled = False

    @staticmethod
    def key(prefix: str, **fields: Any) -> str:
        serialised = json.dumps(fields, sort_keys=True)
        digest = hashlib.md5(serialised.encode(), usedforsecurity=False).hexdigest()
        return f"cache:{prefix}:{digest}"

    async def get(self, prefix: str, **fields: Any) -> Any | None:
        if not self.enabled:
            return None
        try:
            value = await self.client.get(self.key(prefix, **fields))
        except (RedisError, OSError) as exc:
            logger.error("cache get failed: %s", exc)
            return None
        return None if value is None else json.loads(value)

    async def set(self, prefix: str, value: Any, **fields: Any) -> None:
        if not self.enabled:
            return
        try:
            await self.client.set(self.key(prefix, **fields), json.dumps(value), ex=self.ttl)
        except (RedisError, OSError) as exc:
            logger.error("cache set failed: %s", exc)

    async def close(self) -> None:
        await self.client.aclose()


cache = CacheService(REDIS_URL, CACHE_TTL)
security = HTTPBearer()


async def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(security)],
) -> str:
    """The lab's token check: decode the JWT on every request; its subject is the user."""
    unauthorized = HTTPException(
        status_code=401,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(credentials.credentials, SECRET_KEY, algorithms=[ALGORITHM])
    except JWTError:
        raise unauthorized from None
    subject = payload.get("sub")
    if not isinstance(subject, str) or not subject:
        raise unauthorized
    return subject


User = Annotated[str, Depends(current_user)]


class QueryResponse(BaseModel):
    """The answer's fields: bench/bare_app.py's ``POST /invoke`` body, declared as the lab
    declares its response model."""

    output: str
    session_id: str | None
    run_id: str
    usage: dict[str, int]
    cached: bool
    execution_time: float
    metadata: dict[str, Any]


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if not SECRET_KEY:
        raise RuntimeError("NAIVE_SECRET_KEY is not set")
    await cache.connect()
    yield
    await cache.close()


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/invoke", response_model=QueryResponse)
async def invoke(body: RunBody, request: Request, response: Response, _user: User) -> Any:
    fields = body.model_dump()
    if "no-cache" not in request.headers.get("cache-control", ""):
        cached = await cache.get("agent", **fields)
        if cached is not None:
            response.headers["X-Cache"] = "hit"
            return {**cached, "run_id": uuid.uuid4().hex, "cached": True}
    answer = await bare_app.invoke(body)  # the model: latency, then the whole answer
    await cache.set("agent", answer, **fields)
    response.headers["X-Cache"] = "miss"
    return answer


@app.post("/stream")
async def stream(body: RunBody, _user: User) -> StreamingResponse:
    return await bare_app.stream(body)


def main() -> None:
    bare_app.serve(app, __doc__.split("\n", 1)[0])


if __name__ == "__main__":
    main()
