"""Settings that bound what one client or principal may use: per-principal caps, the
failed-authentication limit, and the server's transport limits. A group of their own, mixed
into Settings (app/core/config.py) like the OIDC group, so each file stays one subject."""

from __future__ import annotations

from limits import RateLimitItem, parse
from pydantic import BaseModel, Field, field_validator


class LimitSettings(BaseModel):
    # --- Per-principal fairness ----------------------------------------------------------
    # Caps per principal, shared by every replica through Redis (app/store/concurrency.py,
    # app/tasks/redis_backend.py); over a cap: 429 too_many_concurrent_runs + Retry-After.
    # Redis down: RATE_LIMIT_FAIL_OPEN decides for the run cap (a task cannot be stored then).
    MAX_CONCURRENT_RUNS_PER_PRINCIPAL: int = Field(
        32,
        ge=0,
        description="Foreground runs (invoke, stream, WebSocket) one principal may have in "
        "flight at once, across replicas; 0 = no cap.",
    )
    MAX_ACTIVE_TASKS_PER_PRINCIPAL: int = Field(
        100,
        ge=0,
        description="Tasks one principal may have queued or running (any status short of "
        "finished), across replicas; 0 = no cap.",
    )
    CONCURRENCY_LEASE_SECONDS: float = Field(
        30.0,
        ge=1,
        description="Lease of a foreground run's slot, renewed by its process every third of "
        "it: a killed process's slots free up after this.",
    )
    WORKER_MAX_PARKED: int = Field(
        100,
        ge=0,
        description="Tasks waiting for input (or paused) one worker holds without counting "
        "them against WORKER_CONCURRENCY; past it they count again (bounds memory).",
    )
    WORKER_DEQUEUE_BLOCK_MS: int = Field(
        1000,
        ge=10,
        le=4000,  # under the blocking client's 5 s socket timeout (app/store/redis_client.py)
        description="How long an idle worker's queue read waits for work before it reads "
        "again (ms). On a Redis Cluster a stopping worker waits out at most this.",
    )

    # --- Failed-authentication limit and transport limits ---------------------------
    # The failure limiter: app/middleware/auth_failures.py (counts in Redis, like rate limits).
    # The transport limits: app/entrypoints/http_protocol.py and server.py, for `serve` and
    # the gunicorn worker alike; what they cannot enforce is the ingress's (docs/deployment.md).
    AUTH_FAILURE_LIMIT: str = Field(
        "30/minute",
        description="Failed authentications (bad token or key, failed login) one client IP may "
        "make; past it every credential and login from that IP is 429 unchecked until the "
        "window frees up. Shared across replicas via Redis; empty = off.",
    )
    SERVER_MAX_HEADER_BYTES: int = Field(
        32_768,
        ge=1024,
        description="Largest request head (request line plus all headers); larger is 431.",
    )
    SERVER_MAX_HEADERS: int = Field(
        100, ge=8, description="Most header fields in one request; more is 431."
    )
    SERVER_HEADER_TIMEOUT_SECONDS: float = Field(
        10.0,
        gt=0,
        description="Time a client has to send a request's headers (from connecting, or from "
        "its first byte on a kept-alive connection); slower is closed (408).",
    )
    SERVER_BODY_TIMEOUT_SECONDS: float = Field(
        30.0,
        gt=0,
        description="Time a client has to send a request body once its headers are in; slower "
        "is closed (408).",
    )
    SERVER_LIMIT_CONCURRENCY: int = Field(
        1000,
        ge=0,
        description="Open connections (streams and WebSockets included) per server process "
        "before new requests get 503; 0 = no limit.",
    )

    @field_validator("AUTH_FAILURE_LIMIT")
    @classmethod
    def _parse_auth_failure_limit(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                amount = parse(value).amount
            except ValueError:
                amount = 0
            if amount < 1:
                raise ValueError(
                    f"AUTH_FAILURE_LIMIT {value!r} must look like '30/minute' (or be empty)"
                )
        return value

    @property
    def auth_failure_limit(self) -> RateLimitItem | None:
        return parse(self.AUTH_FAILURE_LIMIT) if self.AUTH_FAILURE_LIMIT else None
