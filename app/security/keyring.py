"""The secrets the service signs and hashes with: the JWT key and the API key pepper.

SECRET_KEY, when set, is the JWT key (production requires it). In development it may be
unset: then a random key is generated at start-up, never a constant baked into the code
(anyone could sign tokens with a published one). With REDIS_URL it is kept in Redis under
SET NX, so every worker and replica (and the `api-keys` CLI) agrees on one key that
survives restarts; without Redis it lives in this process only (tokens die with it, which
is fine for `make run`). If Redis cannot be reached at start-up (after a few tries: the first
command of a process, with a cluster's slot map to fetch too, can miss the short socket timeout
while several processes boot at once) the process falls back to a key of its own and says so:
its tokens then work on this process only.

API_KEY_PEPPER, when set, keys the stored API key hashes; unset, the JWT key does (so a
generated key peppers keys too, and the CLI reads the same one from Redis).
"""

from __future__ import annotations

import secrets
from typing import Literal

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.config import Settings
from app.store.redis_client import retry_at_start_up

log = structlog.get_logger(__name__)

KeySource = Literal["configured", "generated-shared", "generated-process", "unloaded"]

_GENERATED_KEY_BYTES = 48


class Keyring:
    """Built without I/O; ``load`` (in the lifespan, or the CLI) settles a generated key."""

    def __init__(self, settings: Settings) -> None:
        configured = settings.SECRET_KEY
        pepper = settings.API_KEY_PEPPER
        self._prefix = settings.REDIS_KEY_PREFIX
        self._key: str | None = configured.get_secret_value() if configured else None
        self._pepper: bytes | None = pepper.get_secret_value().encode() if pepper else None
        self.source: KeySource = "configured" if configured else "unloaded"

    @property
    def signing_key(self) -> str:
        if self._key is None:
            raise RuntimeError("the generated SECRET_KEY is not loaded yet (Keyring.load)")
        return self._key

    @property
    def api_key_pepper(self) -> bytes:
        return self._pepper if self._pepper is not None else self.signing_key.encode()

    async def load(self, redis: Redis | None, *, for_cli: bool = False) -> None:
        """Settle the JWT key when SECRET_KEY is unset, and say which one in the log. The CLI
        (``for_cli``) logs nothing, since its stdout is data, and never falls back to a key
        of its own: an API key peppered with that would fail everywhere."""
        if self._key is not None:
            return
        candidate = secrets.token_urlsafe(_GENERATED_KEY_BYTES)
        if redis is None:
            self._key, self.source = candidate, "generated-process"
            if for_cli:
                return
            log.warning(
                "secret_key_generated",
                shared=False,
                note="SECRET_KEY is unset: a random key for this process only; "
                "tokens end with it. Set SECRET_KEY to keep them across restarts.",
            )
            return
        name = f"{self._prefix}auth:generated-secret-key"
        try:
            key = await retry_at_start_up(lambda: _set_once_and_read(redis, name, candidate))
        except (RedisError, OSError) as exc:
            if for_cli:
                raise
            self._key, self.source = candidate, "generated-process"
            log.error(
                "secret_key_not_shared",
                error=type(exc).__name__,
                note="Redis is unreachable: this process signs with a key of its own; its "
                "tokens (and API keys peppered with it) work on this process only.",
            )
            return
        self._key, self.source = key, "generated-shared"
        if for_cli:
            return
        log.warning(
            "secret_key_generated",
            shared=True,
            redis_key=name,
            note="SECRET_KEY is unset: a random key kept in Redis, shared by every process "
            "of this deployment. Set SECRET_KEY outside development.",
        )


async def _set_once_and_read(redis: Redis, name: str, candidate: str) -> str:
    # NX: the first worker or replica writes it, every other one reads the same key.
    await redis.set(name, candidate, nx=True)
    return str(await redis.get(name) or candidate)
