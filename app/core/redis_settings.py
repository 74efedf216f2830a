"""Settings of the Redis connection: where it is (one Redis, a cluster or a Sentinel-watched
primary, app/core/redis_url.py), the key prefix, and the client's timeouts. A group of its
own, mixed into Settings (app/core/config.py) like the run group."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from app.core.redis_url import parse_redis_url


class RedisSettings(BaseModel):
    # --- Redis -------------------------------------------------------------------------------
    REDIS_URL: str | None = Field(
        None,
        description="Where shared state lives; unset = in-memory stores (one process only). "
        "redis:// or rediss:// (TLS) = one Redis; redis+cluster://host:port[,host:port...] "
        "= a Redis Cluster (rediss+cluster:// for TLS); "
        "redis+sentinel://host:26379[,host:port...]/<primary name>[/db] = the primary a set "
        "of Sentinels names, followed across failovers.",
    )
    REDIS_KEY_PREFIX: str = Field(
        "agent-service:",
        pattern=r"^[^{}]*$",
        description="Prefix of every Redis key (no braces: keys carry cluster hash tags).",
    )
    REDIS_SOCKET_TIMEOUT: float = Field(0.25, gt=0, description="Seconds per Redis command.")
    REDIS_CONNECT_TIMEOUT: float = Field(0.25, gt=0, description="Seconds to open a connection.")
    REDIS_MAX_CONNECTIONS: int = Field(
        64, ge=1, description="Pool size per process (per node with a cluster)."
    )
    REDIS_POOL_TIMEOUT: float = Field(
        0.5, gt=0, description="Seconds to wait for a free pooled connection."
    )
    REDIS_MULTIPLEX: bool = Field(
        True,
        description="Send commands over one shared connection per process (one Redis, not "
        "a cluster or Sentinel); false = a pooled connection per command, redis-py's way.",
    )
    REDIS_HEALTH_CHECK_INTERVAL: int = Field(
        15, ge=0, description="Seconds between PINGs on idle pooled connections."
    )

    @field_validator("REDIS_URL", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("REDIS_URL")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_redis_url(value)  # RedisUrlError is a ValueError: one line at start-up
        return value
