"""The process's long-lived collaborators, opened in the lifespan and closed after it.

Stored on ``app.state.services``; middleware reaches it through ``scope["app"]`` and routes
through the dependencies in ``app/api/deps.py``. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from starlette.types import Scope

from app.agents.control_bus import RunControlBus
from app.agents.registry import AgentRegistry, build_registry
from app.agents.service import RunService
from app.agents.tools.builtin import BUILTIN_TOOLS
from app.agents.tools.registry import ToolRegistry
from app.core.config import Settings
from app.llm.cache import CachedLLM
from app.llm.factory import build_llm
from app.security.accounts import bootstrap_admin
from app.security.authenticator import Authenticator
from app.security.passwords import PasswordHasher
from app.store.api_keys import ApiKeyStore, MemoryApiKeyStore, RedisApiKeyStore
from app.store.rate_limits import RequestRateLimiter
from app.store.redis_client import build_redis
from app.store.session_backends import build_session_store
from app.store.sessions import SessionStore
from app.store.users import MemoryUserStore, RedisUserStore, UserStore
from app.tasks.backend import TaskBackend
from app.tasks.memory_backend import MemoryTaskBackend
from app.tasks.redis_backend import RedisTaskBackend
from app.tasks.service import TaskService
from app.tasks.worker import TaskWorker

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class AppServices:
    settings: Settings
    redis: Redis | None
    users: UserStore
    api_keys: ApiKeyStore
    hasher: PasswordHasher
    authenticator: Authenticator
    rate_limiter: RequestRateLimiter
    llm: CachedLLM
    sessions: SessionStore
    agents: AgentRegistry
    runs: RunService
    tasks: TaskService
    blocking_redis: Redis | None = None
    bus: RunControlBus | None = None
    worker: TaskWorker | None = None
    _worker_task: asyncio.Task[None] | None = None

    def start_worker(self) -> None:
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.serve(), name="task-worker")

    async def aclose(self) -> None:
        # Work first (tasks and runs use the LLM and stores), then the clients they used.
        if self.worker is not None:
            await self.worker.shutdown()
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
        await self.runs.aclose()
        if self.bus is not None:
            await self.bus.aclose()
        await self.llm.aclose()
        for client in (self.blocking_redis, self.redis):
            if client is not None:
                await client.aclose()


def build_stores(settings: Settings, redis: Redis | None) -> tuple[UserStore, ApiKeyStore]:
    if redis is None:
        return MemoryUserStore(), MemoryApiKeyStore()
    prefix = settings.REDIS_KEY_PREFIX
    return RedisUserStore(redis, prefix=prefix), RedisApiKeyStore(redis, prefix=prefix)


def build_task_backend(
    settings: Settings, redis: Redis | None, blocking: Redis | None
) -> TaskBackend:
    if redis is None or blocking is None:
        return MemoryTaskBackend(events_max=settings.TASK_EVENTS_MAX)
    return RedisTaskBackend(
        redis,
        blocking=blocking,
        prefix=settings.REDIS_KEY_PREFIX,
        retention_seconds=settings.TASK_RETENTION_SECONDS,
        events_max=settings.TASK_EVENTS_MAX,
    )


def worker_name(settings: Settings) -> str:
    return settings.WORKER_ID or f"{socket.gethostname()}-{os.getpid()}"


async def open_services(
    settings: Settings, *, run_worker: bool | None = None, bootstrap: bool = True
) -> AppServices:
    """Build everything; ``run_worker`` defaults to WORKER_ENABLED (the worker CLI forces it)."""
    redis = build_redis(settings) if settings.REDIS_URL else None
    blocking = build_redis(settings, blocking=True) if settings.REDIS_URL else None
    users, api_keys = build_stores(settings, redis)
    hasher = PasswordHasher(
        rounds=settings.BCRYPT_ROUNDS, concurrency=settings.PASSWORD_HASH_CONCURRENCY
    )
    agents = build_registry(settings.AGENTS)
    llm = build_llm(settings, redis)
    sessions = build_session_store(settings, redis)
    runs = RunService(
        settings=settings,
        agents=agents,
        tools=ToolRegistry(BUILTIN_TOOLS),
        llm=llm,
        sessions=sessions,
    )
    task_backend = build_task_backend(settings, redis, blocking)
    services = AppServices(
        settings=settings,
        redis=redis,
        users=users,
        api_keys=api_keys,
        hasher=hasher,
        authenticator=Authenticator(settings=settings, api_keys=api_keys),
        rate_limiter=RequestRateLimiter(settings=settings, redis=redis),
        llm=llm,
        sessions=sessions,
        agents=agents,
        runs=runs,
        tasks=TaskService(backend=task_backend, agents=agents, sessions=sessions),
        blocking_redis=blocking,
    )
    if settings.WORKER_ENABLED if run_worker is None else run_worker:
        services.worker = TaskWorker(
            settings=settings, backend=task_backend, runs=runs, consumer=worker_name(settings)
        )
    if redis is not None:
        # Foreground runs are reachable from every replica (input, cancel) over pub/sub.
        services.bus = runs.bus = RunControlBus(
            redis, prefix=settings.REDIS_KEY_PREFIX, handler=runs.handle_bus_request
        )
        services.bus.start()
    if settings.AUTH_ENABLED and bootstrap:
        await _bootstrap_admin(services)
    return services


async def _bootstrap_admin(services: AppServices) -> None:
    settings = services.settings
    try:
        generated = await bootstrap_admin(
            settings=settings, users=services.users, hasher=services.hasher
        )
    except Exception as exc:  # Redis down at boot must not stop the API from starting
        log.error("admin_bootstrap_failed", error=type(exc).__name__)
        return
    if generated is not None:
        # Written once to stderr, past the log redaction on purpose: it is the one way a
        # developer learns the generated password. Only development ever gets here.
        log.warning("admin_password_generated", username=settings.ADMIN_USERNAME)
        sys.stderr.write(
            f"\n  Development admin: username={settings.ADMIN_USERNAME} password={generated}\n"
            "  (set ADMIN_PASSWORD to choose your own)\n\n"
        )
        sys.stderr.flush()


def services_of(scope: Scope) -> AppServices:
    services: AppServices = scope["app"].state.services
    return services
