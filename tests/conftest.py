"""Shared fixtures: a private redis-server per test worker, fresh apps with real middleware."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from app.core.config import Settings
from app.main import create_app
from app.services import AppServices, build_services
from app.store.redis_client import build_redis
from tests.support.redis_server import RedisServer

ADMIN_PASSWORD = "admin-test-password"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def running_redis(redis_server: RedisServer) -> RedisServer:
    """The shared server, restarted if an earlier outage test left it stopped."""
    redis_server.start()
    return redis_server


@pytest.fixture
def key_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(key_prefix: str) -> SettingsFactory:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "BCRYPT_ROUNDS": 4,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "REDIS_KEY_PREFIX": key_prefix,
            "LOG_FORMAT": "json",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


class AppClient(httpx.AsyncClient):
    """An HTTP client bound to one in-process app; tests may add routes or inspect services."""

    app: FastAPI
    services: AppServices


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[AppClient]:
    """A fresh app with its full middleware chain and lifespan, driven in-process."""
    services = build_services(settings)
    app = create_app(settings, services=services)
    # Generous timeouts: a loaded CI machine must not turn a slow shutdown into an error.
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        # raise_app_exceptions=False: see the 500 the client gets, not the server-side raise.
        transport = httpx.ASGITransport(
            app=manager.app, client=("127.0.0.1", 50000), raise_app_exceptions=False
        )
        async with AppClient(transport=transport, base_url="http://test") as client:
            client.app = app
            client.services = services
            yield client


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[AppClient]:
    """In-memory backends (no Redis): the embedded default."""
    async with app_client(make_settings()) as http:
        yield http


@pytest.fixture
async def redis_client(
    make_settings: SettingsFactory, running_redis: RedisServer
) -> AsyncIterator[AppClient]:
    """Redis-backed stores and rate limiting against the private redis-server."""
    async with app_client(make_settings(REDIS_URL=running_redis.url)) as http:
        yield http


@pytest.fixture(params=["memory", "redis"])
def store_backend(request: pytest.FixtureRequest, redis_server: RedisServer) -> dict[str, Any]:
    """Settings overrides for each store backend in turn: none (memory), or the private
    redis-server's URL. For a test building its own app on both."""
    if request.param == "redis":
        redis_server.start()
        return {"REDIS_URL": redis_server.url}
    return {}


@pytest.fixture
async def any_client(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[AppClient]:
    """The same test against both store backends."""
    async with app_client(make_settings(**store_backend)) as http:
        yield http


@pytest.fixture
async def redis(
    redis_server: RedisServer, make_settings: SettingsFactory, key_prefix: str
) -> AsyncIterator[Redis]:
    """The service's own Redis client (build_redis) on the private redis-server, for a test
    that drives a store directly; the test's keys (under its prefix) are deleted after."""
    redis_server.start()
    client = build_redis(make_settings(REDIS_URL=redis_server.url))
    try:
        yield client
    finally:
        leftovers = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
        if leftovers:
            await client.delete(*leftovers)
        await client.aclose()


@pytest.fixture
async def raw_redis(running_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(running_redis.url, decode_responses=True, socket_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


async def login(
    client: httpx.AsyncClient, password: str = ADMIN_PASSWORD, username: str = "admin"
) -> str:
    response = await client.post(
        "/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
async def admin_token(client: httpx.AsyncClient) -> str:
    return await login(client)
