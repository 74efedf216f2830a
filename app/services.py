"""The process's long-lived collaborators, built together in one place and run by the lifespan.

``build_services(settings)`` constructs every collaborator fully (no I/O: Redis clients
connect lazily), so ``create_app`` can hand middleware what it needs through constructor
arguments. The lifespan then starts them (``async with services.running()``) and yields them
as the typed ``State``; routes reach it only through ``app/api/deps.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypedDict

import structlog
from redis.asyncio import Redis

from app.agents.control_bus import RunControlBus
from app.agents.registry import AgentRegistry, build_registry
from app.agents.service import RunService
from app.agents.sessions import SessionService
from app.agents.tools.loader import build_tool_registry
from app.agents.tools.registry import ToolRegistry
from app.agents.usage import UsageMeter
from app.core.config import Settings
from app.core.lifecycle import stop_task
from app.core.urls import without_credentials
from app.llm.cache import CachedLLM
from app.llm.factory import build_llm
from app.security.accounts import bootstrap_admin
from app.security.authenticator import Authenticator
from app.security.invalidation import InvalidationBus
from app.security.keyring import Keyring
from app.security.oidc import build_oidc_verifier
from app.security.passwords import PasswordHasher
from app.security.revocation import UserCheck
from app.security.tenant_limits import TenantLimits
from app.security.tenants import TenantDirectory, TenantService
from app.security.users import Forget, UserService
from app.store.api_keys import ApiKeyStore, MemoryApiKeyStore, RedisApiKeyStore
from app.store.auth_failures import AuthFailureLimiter, build_auth_failure_limiter
from app.store.concurrency import build_run_slots
from app.store.rate_limits import RequestRateLimiter
from app.store.redis_client import build_redis, retry_at_start_up
from app.store.run_store import RunStore
from app.store.run_store_memory import MemoryRunStore
from app.store.run_store_redis import RedisRunStore
from app.store.session_backends import build_agent_state_store, build_session_store
from app.store.tenants import MemoryTenantStore, RedisTenantStore, TenantStore
from app.store.usage_ledger import Budgets, MemoryUsageLedger, UsageLedger
from app.store.usage_ledger_redis import RedisUsageLedger
from app.store.users import MemoryUserStore, RedisUserStore, UserStore
from app.tasks.backend import TaskBackend
from app.tasks.memory_backend import MemoryTaskBackend
from app.tasks.redis_backend import RedisTaskBackend
from app.tasks.service import TaskService
from app.tasks.worker import TaskWorker
from app.webhooks.dispatcher import WebhookDispatcher
from app.webhooks.service import WebhookService
from app.webhooks.setup import build_forget, build_webhooks

log = structlog.get_logger(__name__)


@dataclass(slots=True, kw_only=True)
class AppServices:
    settings: Settings
    redis: Redis | None
    blocking_redis: Redis | None
    users: UserStore
    api_keys: ApiKeyStore
    hasher: PasswordHasher
    keys: Keyring
    user_check: UserCheck
    principal_changes: InvalidationBus
    user_admin: UserService
    tenants: TenantDirectory
    tenant_admin: TenantService
    authenticator: Authenticator
    rate_limiter: RequestRateLimiter
    auth_failures: AuthFailureLimiter | None = None  # None: AUTH_FAILURE_LIMIT is off
    llm: CachedLLM
    agents: AgentRegistry
    tools: ToolRegistry
    sessions: SessionService
    runs: RunService
    tasks: TaskService
    bus: RunControlBus | None
    worker: TaskWorker | None
    webhooks: WebhookService | None = None  # None: WEBHOOKS_ENABLED is off
    webhook_dispatcher: WebhookDispatcher | None = None  # where tasks run
    _worker_task: asyncio.Task[None] | None = field(default=None, init=False)
    _dispatcher_task: asyncio.Task[None] | None = field(default=None, init=False)
    _used: bool = field(default=False, init=False)

    @asynccontextmanager
    async def running(self, *, bootstrap: bool = True) -> AsyncIterator[AppServices]:
        """Start the background parts, yield, then close everything (once per process)."""
        if self._used:
            raise RuntimeError("services run once; build new ones (create_app) to run again")
        self._used = True
        try:
            await self.keys.load(self.redis)  # a generated dev SECRET_KEY, before any token
            await self.principal_changes.start()
            if self.bus is not None:
                self.bus.start(self.runs.apply_locally)
            if self.worker is not None:
                self._worker_task = asyncio.create_task(self.worker.serve(), name="task-worker")
            if self.webhook_dispatcher is not None:
                self._dispatcher_task = asyncio.create_task(
                    self.webhook_dispatcher.serve(), name="webhook-dispatcher"
                )
            if self.settings.AUTH_ENABLED and bootstrap:
                await self._bootstrap_admin()
            yield self
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        # Work first (tasks and runs use the LLM and stores), then the clients they used.
        if self.worker is not None:
            await self.worker.shutdown()
        await stop_task(self._worker_task)
        await stop_task(self._dispatcher_task)
        if self.webhook_dispatcher is not None:
            await self.webhook_dispatcher.aclose()  # in flight: their leases run out
        await self.tasks.backend.aclose()
        await self.runs.aclose()
        await self.runs.meter.aclose()  # the last calls' usage, written
        if self.bus is not None:
            await self.bus.aclose()
        await self.llm.aclose()
        await self.principal_changes.aclose()
        await self.authenticator.aclose()  # the OIDC key fetcher's HTTP client
        await self.rate_limiter.aclose()  # the limits storage's own cluster/Sentinel client
        if self.auth_failures is not None:
            await self.auth_failures.aclose()
        for client in (self.blocking_redis, self.redis):
            if client is not None:
                await client.aclose()

    async def _bootstrap_admin(self) -> None:
        settings = self.settings
        try:
            generated = await retry_at_start_up(
                lambda: bootstrap_admin(
                    settings=settings,
                    users=self.users,
                    hasher=self.hasher,
                    bus=self.principal_changes,
                )
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


class State(TypedDict):
    """What the lifespan yields; Starlette exposes it to every request as ``request.state``."""

    services: AppServices


def build_stores(settings: Settings, redis: Redis | None) -> tuple[UserStore, ApiKeyStore]:
    if redis is None:
        return MemoryUserStore(), MemoryApiKeyStore()
    prefix = settings.REDIS_KEY_PREFIX
    return RedisUserStore(redis, prefix=prefix), RedisApiKeyStore(redis, prefix=prefix)


def principal_forgetter(settings: Settings, redis: Redis) -> Forget | None:
    """For the CLI's user and tenant deletions: what the API's webhook service does."""
    return build_forget(settings, redis) if settings.WEBHOOKS_ENABLED else None


def build_tenant_store(settings: Settings, redis: Redis | None) -> TenantStore:
    if redis is None:
        return MemoryTenantStore()
    return RedisTenantStore(redis, prefix=settings.REDIS_KEY_PREFIX)


def build_run_storage(
    settings: Settings, redis: Redis | None, blocking: Redis | None
) -> tuple[RunStore, TaskBackend]:
    """The run store (records and logs of every run) and the task queue on top of it."""
    if redis is None or blocking is None:
        memory = MemoryRunStore(
            events_max=settings.TASK_EVENTS_MAX,
            retention_seconds=settings.TASK_RETENTION_SECONDS,
            run_retention_seconds=settings.RUN_RETENTION_SECONDS,
            max_finished=settings.MEMORY_FINISHED_RUNS_MAX,
        )
        return memory, MemoryTaskBackend(memory)
    store = RedisRunStore(
        redis,
        blocking=blocking,
        prefix=settings.REDIS_KEY_PREFIX,
        retention_seconds=settings.TASK_RETENTION_SECONDS,
        run_retention_seconds=settings.RUN_RETENTION_SECONDS,
        events_max=settings.TASK_EVENTS_MAX,
    )
    return store, RedisTaskBackend(redis, blocking=blocking, store=store)


def build_usage_meter(settings: Settings, redis: Redis | None) -> UsageMeter:
    ledger: UsageLedger = (
        MemoryUsageLedger()
        if redis is None
        else RedisUsageLedger(redis, prefix=settings.REDIS_KEY_PREFIX)
    )
    return UsageMeter(
        ledger,
        budgets=Budgets(
            per_day=settings.BUDGET_TOKENS_PER_DAY, per_month=settings.BUDGET_TOKENS_PER_MONTH
        ),
        reserve_tokens=settings.BUDGET_RESERVE_TOKENS,
        retention_days=settings.USAGE_RETENTION_DAYS,
        lease_seconds=settings.RUN_TIMEOUT_SECONDS,
    )


def worker_name(settings: Settings) -> str:
    return settings.WORKER_ID or f"{socket.gethostname()}-{os.getpid()}"


def build_services(settings: Settings, *, run_worker: bool | None = None) -> AppServices:
    """Build everything; ``run_worker`` defaults to WORKER_ENABLED (the worker CLI forces it)."""
    redis = build_redis(settings) if settings.REDIS_URL else None
    blocking = build_redis(settings, blocking=True) if settings.REDIS_URL else None
    users, api_keys = build_stores(settings, redis)
    hasher = PasswordHasher(
        rounds=settings.BCRYPT_ROUNDS, concurrency=settings.PASSWORD_HASH_CONCURRENCY
    )
    keys = Keyring(settings)
    user_check = UserCheck(
        users=users,
        api_keys=api_keys,
        ttl_seconds=settings.USER_CHECK_TTL_SECONDS,
        fail_open=settings.USER_CHECK_FAIL_OPEN,
    )
    tenant_store = build_tenant_store(settings, redis)
    tenants = TenantDirectory(tenant_store, ttl_seconds=settings.USER_CHECK_TTL_SECONDS)
    principal_changes = InvalidationBus(
        redis, prefix=settings.REDIS_KEY_PREFIX, check=user_check, also=(tenants,)
    )
    agents = build_registry(settings.AGENTS)
    tools = build_tool_registry(settings.TOOLS, timeout=settings.TOOL_TIMEOUT_SECONDS)
    llm = build_llm(settings, redis)
    sessions = SessionService(
        store=build_session_store(settings, redis),
        agents=agents,
        state=build_agent_state_store(settings, redis),
    )
    # Foreground runs are reachable from every replica (input, cancel) over pub/sub.
    bus = RunControlBus(redis, prefix=settings.REDIS_KEY_PREFIX) if redis is not None else None
    run_store, task_backend = build_run_storage(settings, redis, blocking)
    runs = RunService(
        settings=settings,
        agents=agents,
        tools=tools,
        llm=llm,
        sessions=sessions,
        store=run_store,
        bus=bus,
        slots=build_run_slots(settings, redis),
        meter=build_usage_meter(settings, redis),
        limits=TenantLimits(settings, tenants),
    )
    worker = None
    if settings.WORKER_ENABLED if run_worker is None else run_worker:
        worker = TaskWorker(
            settings=settings, backend=task_backend, runs=runs, consumer=worker_name(settings)
        )
    webhooks = None
    if settings.WEBHOOKS_ENABLED:
        webhooks = build_webhooks(settings, redis, run_store, dispatch=worker is not None)
    forget = webhooks.service.forget_owner if webhooks is not None else None
    return AppServices(
        settings=settings,
        redis=redis,
        blocking_redis=blocking,
        users=users,
        api_keys=api_keys,
        hasher=hasher,
        keys=keys,
        user_check=user_check,
        principal_changes=principal_changes,
        user_admin=UserService(
            users=users, api_keys=api_keys, hasher=hasher, bus=principal_changes, on_deleted=forget
        ),
        tenants=tenants,
        tenant_admin=TenantService(
            store=tenant_store,
            users=users,
            api_keys=api_keys,
            bus=principal_changes,
            on_deleted=forget,
        ),
        authenticator=Authenticator(
            settings=settings,
            api_keys=api_keys,
            keys=keys,
            user_check=user_check,
            tenants=tenants,
            oidc=build_oidc_verifier(settings),
        ),
        rate_limiter=RequestRateLimiter(settings=settings, redis=redis),
        auth_failures=build_auth_failure_limiter(settings, redis),
        llm=llm,
        agents=agents,
        tools=tools,
        sessions=sessions,
        runs=runs,
        tasks=TaskService(
            backend=task_backend,
            runs=runs,
            sessions=sessions,
        ),
        bus=bus,
        worker=worker,
        webhooks=webhooks.service if webhooks is not None else None,
        webhook_dispatcher=webhooks.dispatcher if webhooks is not None else None,
    )


def describe_services(services: AppServices) -> dict[str, object]:
    """What this process serves, for the start-up log line (never a secret)."""
    settings = services.settings
    return {
        "environment": settings.ENVIRONMENT,
        "agents": [agent.name for agent in services.agents.all()],
        "tools": [tool.name for tool in services.tools.all()],
        "llm_provider": services.llm.name,
        "llm_model": services.llm.model,
        "llm_settings": settings.llm.public_summary(),
        "cache": settings.CACHE_ENABLED,
        "storage": without_credentials(settings.REDIS_URL) if settings.REDIS_URL else "memory",
        "auth": settings.AUTH_ENABLED,
        "jwt_key_source": services.keys.source,  # configured|generated-shared|generated-process
        "rate_limit": settings.RATE_LIMIT_ENABLED,
        "worker": (
            f"embedded x{settings.WORKER_CONCURRENCY}"
            if services.worker is not None
            else "off (run `agent-service worker`)"
        ),
    }
