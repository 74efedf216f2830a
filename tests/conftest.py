"""Shared fixtures: a private redis-server per test worker, fresh apps with real middleware."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from _pytest.nodeid import NodeId
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from app.core.config import Settings
from app.main import create_app
from app.services import AppServices, build_services
from app.store.redis_client import build_redis
from tests.support import process_logs, slot_audit
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import CALM_NODE_TIMEOUT_MS, RedisClusterTopology

ADMIN_PASSWORD = "admin-test-password"

slot_audit.install()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` honour the xdist_group marks again. pytest-xdist 3.8 names a
    marked test's group by appending "@<group>" to its nodeid through `item._nodeid`, which
    pytest 9.2 no longer reads (a node's id is `item._id` now): every group was ignored, so a
    module's tests were spread over both workers and its module-scoped servers and browsers
    started on each, sometimes more than once. Same suffix, set where pytest 9.2 reads it."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report ends with the logs of the servers and workers it used."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when == "call":
        report.sections.extend(process_logs.tails(since=report.start))


@pytest.fixture(autouse=True)
def _one_slot_per_operation() -> Iterator[None]:
    """Fail a test whose code ran a script, transaction or MGET over two hash slots (what a
    Redis Cluster refuses), even on the single Redis (tests/support/slot_audit.py)."""
    slot_audit.take()
    yield
    found = slot_audit.take()
    if found and os.environ.get("SLOT_AUDIT", "1") != "0":
        pytest.fail("cluster-unsafe Redis operations:\n" + "\n".join(found), pytrace=False)


# The embedded task worker of an in-process app blocks reading the queue for up to
# WORKER_DEQUEUE_BLOCK_MS, and its shutdown waits for that read to end. On one Redis, CLIENT
# UNBLOCK ends it at once, unless shutdown comes before the first read has a connection; on a
# cluster nothing can (app/tasks/redis_backend.py). So every Redis-backed app's teardown
# waited up to a full second (~1 s on ~125 of the cluster-parametrised tests, a minute of the
# suite's wall time). Shorter blocks for the apps make_settings builds: the same code path and
# the same reads, just a shorter wait when the queue is empty. Server and worker processes
# keep the default, and the tests of the blocked read and its interruption pass their own
# block (tests/integration/test_cluster_tasks.py).
IN_PROCESS_DEQUEUE_BLOCK_MS = 100
PATIENT_CONNECT_SECONDS = 2.0


def _own_redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from _own_redis_server()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """A redis-server of the module's own, for tests that pause it (SIGSTOP) or stop it."""
    yield from _own_redis_server()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterTopology]:
    """A private 3-primary Redis Cluster (one replica each) per test worker, started the first
    time a test asks for it; the Redis-backed tests run against it beside the single Redis.
    Nothing fails it over on purpose, so it is slow to declare a node dead (a loaded machine
    can keep a node from gossiping for a second); the failover tests start their own."""
    cluster = RedisClusterTopology(node_timeout_ms=CALM_NODE_TIMEOUT_MS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


REDIS_TOPOLOGIES = ["redis", "cluster"]


def redis_url_for(request: pytest.FixtureRequest, topology: str) -> str:
    """REDIS_URL of the single redis-server (started if stopped) or of the cluster."""
    if topology == "cluster":
        cluster: RedisClusterTopology = request.getfixturevalue("redis_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("redis_server")
    server.start()
    return server.url


@pytest.fixture(params=REDIS_TOPOLOGIES)
def redis_url(request: pytest.FixtureRequest) -> str:
    """Each Redis topology in turn: the single redis-server, then the cluster."""
    return redis_url_for(request, str(request.param))


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
            "WORKER_DEQUEUE_BLOCK_MS": IN_PROCESS_DEQUEUE_BLOCK_MS,
            # Opening a connection: a stopped Redis refuses at once and a paused one accepts,
            # so no fault test depends on this; on a loaded 2-core machine a fresh cluster
            # connection now and then took longer than the 0.25 s default (CI flakes).
            "REDIS_CONNECT_TIMEOUT": PATIENT_CONNECT_SECONDS,
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
async def redis_client(make_settings: SettingsFactory, redis_url: str) -> AsyncIterator[AppClient]:
    """Redis-backed stores and rate limiting, on the single Redis and on the cluster."""
    async with app_client(make_settings(REDIS_URL=redis_url)) as http:
        yield http


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
def store_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for each store backend in turn: none (memory), the private
    redis-server's URL, the private cluster's. For a test building its own app on each."""
    if request.param == "memory":
        return {}
    return {"REDIS_URL": redis_url_for(request, str(request.param))}


@pytest.fixture
async def any_client(
    make_settings: SettingsFactory, store_backend: dict[str, Any]
) -> AsyncIterator[AppClient]:
    """The same test against both store backends."""
    async with app_client(make_settings(**store_backend)) as http:
        yield http


@pytest.fixture
async def redis(
    redis_url: str, make_settings: SettingsFactory, key_prefix: str
) -> AsyncIterator[Redis]:
    """The service's own Redis client (build_redis) on each topology, for a test that drives
    a store directly; the test's keys (under its prefix) are deleted after."""
    client = build_redis(make_settings(REDIS_URL=redis_url))
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
