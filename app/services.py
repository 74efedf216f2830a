"""The process's long-lived collaborators, opened in the lifespan and closed after it.

Stored on ``app.state.services``; middleware reaches it through ``scope["app"]`` and routes
through the dependencies in ``app/api/deps.py``. Nothing here runs at import time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from starlette.types import Scope

from app.config import Settings
from app.security.accounts import bootstrap_admin
from app.security.authenticator import Authenticator
from app.security.passwords import PasswordHasher
from app.store.api_keys import ApiKeyStore, MemoryApiKeyStore, RedisApiKeyStore
from app.store.rate_limits import RequestRateLimiter
from app.store.redis_client import build_redis
from app.store.users import MemoryUserStore, RedisUserStore, UserStore

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

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def build_stores(settings: Settings, redis: Redis | None) -> tuple[UserStore, ApiKeyStore]:
    if redis is None:
        return MemoryUserStore(), MemoryApiKeyStore()
    prefix = settings.REDIS_KEY_PREFIX
    return RedisUserStore(redis, prefix=prefix), RedisApiKeyStore(redis, prefix=prefix)


async def open_services(settings: Settings) -> AppServices:
    redis = build_redis(settings) if settings.REDIS_URL else None
    users, api_keys = build_stores(settings, redis)
    hasher = PasswordHasher(
        rounds=settings.BCRYPT_ROUNDS, concurrency=settings.PASSWORD_HASH_CONCURRENCY
    )
    services = AppServices(
        settings=settings,
        redis=redis,
        users=users,
        api_keys=api_keys,
        hasher=hasher,
        authenticator=Authenticator(settings=settings, api_keys=api_keys),
        rate_limiter=RequestRateLimiter(settings=settings, redis=redis),
    )
    if settings.AUTH_ENABLED:
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
