"""One Settings object for every knob, read once and passed down.

Names are the conventional ones. ``ENVIRONMENT=production`` refuses to start with unsafe
values (see ``_production_guards``): a config error at boot beats a breach at run time.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Annotated, Any, Literal

from limits import RateLimitItem, parse
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.budget_settings import BudgetSettings
from app.core.gunicorn_env import GUNICORN_ENV
from app.core.limits_settings import LimitSettings
from app.core.llm_settings import (
    DEFAULT_PROVIDER,
    ProviderSettings,
    claimed,
    load_provider_settings,
    provider_models,
)
from app.core.oidc_settings import OidcSettings
from app.core.production import production_refusal, production_warnings
from app.core.protocol_settings import ProtocolSettings
from app.core.redis_settings import RedisSettings
from app.core.run_settings import RunSettings
from app.core.tracing_settings import TracingSettings as Tracing
from app.core.webhook_settings import WebhookSettings

# The placeholder earlier versions defaulted to. It is public, so it is refused everywhere;
# development without SECRET_KEY generates a random key (app/security/keyring.py).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-before-production"  # noqa: S105


_CACHE_LOCAL = (
    "With Redis: each process also keeps the answers it read or wrote for up to this long "
    "(never past the entry's Redis expiry), so a repeated hit costs no round trip. 0 = always "
    "ask Redis."
)
_CACHE_LOCAL_MAX = "Answers one process keeps for CACHE_LOCAL_SECONDS (LRU)."
_CACHE_LOCAL_MB = (
    "Megabytes (of text) of answers one process keeps in memory, the local copies or, without "
    "Redis, the whole cache; the least recently used go first, a larger answer is not kept."
)


class Settings(
    BaseSettings,
    RedisSettings,
    LimitSettings,
    RunSettings,
    OidcSettings,
    ProtocolSettings,
    Tracing,
    WebhookSettings,
    BudgetSettings,
):
    # Groups of their own: app/core/{redis,limits,run,oidc,protocol,tracing,webhook,budget}
    # _settings.py.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        case_sensitive=True,
        validate_default=True,
    )
    _llm: ProviderSettings = PrivateAttr()

    # --- API ---------------------------------------------------------------------------------
    API_TITLE: str = Field("agent-service", description="Title shown in OpenAPI docs.")
    API_VERSION: str = Field("0.1.0", description="Version shown in OpenAPI docs.")
    API_PREFIX: str = Field("/v1", description="Prefix of the versioned API routes.")
    DEBUG: bool = Field(False, description="Debug mode (never shows tracebacks to clients).")
    ENVIRONMENT: Literal["development", "production"] = Field(
        "development", description="production turns on the start-up safety guards and JSON logs."
    )
    DOCS_ENABLED: bool = Field(True, description="Serve /docs, /redoc and /openapi.json.")

    # --- Server ------------------------------------------------------------------------------
    HOST: str = Field("127.0.0.1", description="Bind address for `agent-service serve`.")
    PORT: int = Field(8000, ge=1, le=65535, description="Bind port for `agent-service serve`.")
    WORKERS: int = Field(1, ge=1, le=64, description="Worker processes for gunicorn.")
    FORWARDED_ALLOW_IPS: str = Field(
        "127.0.0.1",
        description="Comma-separated proxy IPs/CIDRs whose X-Forwarded-For is trusted ('*' = all).",
    )

    # --- Authentication ----------------------------------------------------------------------
    AUTH_ENABLED: bool = Field(True, description="Require credentials on protected routes.")
    SECRET_KEY: SecretStr | None = Field(
        None,
        description="HMAC key for issued JWTs (>= 32 bytes); required in production. Unset in "
        "development = a random key, shared through Redis when REDIS_URL is set, else per process.",
    )
    ALGORITHM: Literal["HS256", "HS384", "HS512"] = Field(
        "HS256", description="Signing algorithm of issued JWTs (one HMAC family, never mixed)."
    )
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(
        30, ge=1, le=24 * 60, description="Lifetime of issued access tokens."
    )
    JWT_ISSUER: str | None = Field(None, description="iss set on issued tokens and required.")
    JWT_AUDIENCE: str | None = Field(None, description="aud set on issued tokens and required.")
    JWT_LEEWAY_SECONDS: int = Field(10, ge=0, le=300, description="Clock skew allowed on exp.")
    ADMIN_USERNAME: str = Field("admin", min_length=1, description="Bootstrap admin user name.")
    ADMIN_PASSWORD: SecretStr | None = Field(
        None, description="Bootstrap admin password; unset in development = generated and printed."
    )
    BCRYPT_ROUNDS: int = Field(12, ge=4, le=16, description="bcrypt cost for stored passwords.")
    PASSWORD_HASH_CONCURRENCY: int = Field(
        4, ge=1, le=64, description="Threads that may run bcrypt at once (bounds CPU burn)."
    )
    API_KEY_PEPPER: SecretStr | None = Field(
        None,
        description="HMAC key for stored API key hashes (defaults to SECRET_KEY, or the "
        "generated development key).",
    )

    # --- Users and revocation (issue 9) -------------------------------------------------------
    USER_CHECK_TTL_SECONDS: float = Field(
        5.0,
        ge=0,
        le=300,
        description="Seconds a process trusts its cached view of a user (disabled, credentials "
        "changed, signed-out tokens); changes reach every process at once over Redis pub/sub, "
        "this bounds a lost message. 0 = read the user on every request.",
    )
    USER_CHECK_FAIL_OPEN: bool = Field(
        True,
        description="When the user store (Redis) is down and the user is not cached: true accepts "
        "a verified token (signature and exp still hold), false answers 503.",
    )

    @field_validator("SECRET_KEY")
    @classmethod
    def _refuse_public_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None  # `SECRET_KEY=` in .env means unset, never an empty HMAC key
        if value is not None and value.get_secret_value() == DEV_SECRET_KEY:
            raise ValueError(
                "SECRET_KEY is the public placeholder of earlier versions: anyone can sign "
                "tokens with it. Unset it (development generates a key) or set a random value."
            )
        return value

    # --- Rate limiting -----------------------------------------------------------------------
    RATE_LIMIT_ENABLED: bool = Field(True, description="Enforce request rate limits.")
    RATE_LIMIT_REQUESTS: int = Field(120, ge=1, description="Default requests per window.")
    RATE_LIMIT_WINDOW: int = Field(60, ge=1, description="Default window in seconds.")
    RATE_LIMIT_STRATEGY: Literal["sliding-window-counter", "moving-window", "fixed-window"] = Field(
        "sliding-window-counter", description="limits.aio strategy."
    )
    RATE_LIMIT_ROUTES: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='Per-route limits, JSON {"METHOD /route/{template}": "N/period"}; '
        "unset = login limited to 10/minute (POST {API_PREFIX}/auth/token).",
    )
    RATE_LIMIT_LOCAL_BATCH: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Most permits one process reserves per Redis call (<= 1% of the limit); "
        "1 = one Redis check per request.",
    )
    RATE_LIMIT_FAIL_OPEN: bool = Field(
        True, description="When Redis is down: true lets requests through, false answers 503."
    )

    # --- LLM ---------------------------------------------------------------------------------
    # The provider's own variables (OPENAI_*, OFFLINE_*, a plug-in's) are validated by its
    # settings model, app/core/llm_settings.py; `settings.llm` is the loaded instance.
    LLM_PROVIDER: str = Field(
        DEFAULT_PROVIDER,
        description="offline = built-in deterministic model; openai = any compatible server; "
        "or a plug-in's ProviderSpec as 'package.module:attribute'.",
    )

    # --- Cache (LLM responses) ---------------------------------------------------------------
    CACHE_ENABLED: bool = Field(True, description="Cache deterministic LLM responses.")
    CACHE_TTL: int = Field(3600, ge=1, description="Seconds a cached LLM response lives.")
    CACHE_LOCAL_SECONDS: float = Field(10.0, ge=0, description=_CACHE_LOCAL)
    CACHE_LOCAL_MAX_ENTRIES: int = Field(1024, ge=1, description=_CACHE_LOCAL_MAX)
    CACHE_LOCAL_MAX_MB: int = Field(64, ge=1, description=_CACHE_LOCAL_MB)
    # Part of every cache key (app/llm/cache.py): partitions share no entry, no in-flight call.
    CACHE_SCOPE: Literal["global", "principal", "tenant"] = Field(
        "global",
        description="Who shares cached LLM answers. global = every caller: the most hits, but "
        "whoever sends the same text as someone else gets X-Cache: HIT and the same answer, "
        "so learns what was asked (fine when all callers are one organisation). principal = "
        "each user or API key has its own entries: no such oracle, fewer hits. tenant = "
        "every caller of one tenant. Tenants never share entries, whatever the scope (global "
        "and tenant differ only in name). Production warns about global.",
    )

    # --- Background tasks --------------------------------------------------------------------
    WORKER_ENABLED: bool = Field(
        True, description="Run background tasks inside this API process too (embedded default)."
    )
    WORKER_CONCURRENCY: int = Field(8, ge=1, le=1000, description="Tasks one worker runs at once.")
    WORKER_ID: str | None = Field(None, description="Consumer name; unset = hostname-pid.")
    WORKER_METRICS_PORT: int = Field(
        9100, ge=0, le=65535, description="`agent-service worker` serves /metrics here; 0 = off."
    )
    WORKER_SHUTDOWN_GRACE_SECONDS: float = Field(
        20.0, ge=0, description="On shutdown, running tasks get this long before release."
    )
    TASK_LEASE_SECONDS: float = Field(
        30.0, ge=1, description="A task whose worker stops heartbeating is redelivered after this."
    )
    MAX_ATTEMPTS: int = Field(
        3, ge=1, le=20, description="Deliveries of a task before it fails with worker_lost."
    )

    # --- HTTP hygiene ------------------------------------------------------------------------
    REQUEST_CONTEXT_ENABLED: bool = Field(
        True, description="Accept/generate X-Request-ID and bind it into log context."
    )
    ACCESS_LOG_ENABLED: bool = Field(True, description="One structured log line per request.")
    SECURITY_HEADERS_ENABLED: bool = Field(True, description="nosniff, frame, referrer, CSP.")
    HSTS_SECONDS: int = Field(0, ge=0, description="Strict-Transport-Security max-age; 0 = off.")
    MAX_REQUEST_BODY_BYTES: int = Field(
        1_048_576, ge=0, description="Largest accepted request body; 0 = no limit."
    )
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins (comma list or JSON); empty = off."
    )
    CORS_ALLOW_CREDENTIALS: bool = Field(False, description="Allow cookies/credentials in CORS.")

    # --- Observability -----------------------------------------------------------------------
    ENABLE_METRICS: bool = Field(True, description="Collect Prometheus metrics, serve /metrics.")
    PROMETHEUS_MULTIPROC_DIR: str | None = Field(
        None, description="Directory for multi-process metrics (set before Python starts)."
    )
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level."
    )
    LOG_FORMAT: Literal["auto", "json", "console"] = Field(
        "auto", description="auto = json in production, console in development."
    )

    # --- Agents, runs and sessions ------------------------------------------------------------
    AGENTS: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra agents to serve, as import paths 'pkg.module:attr' (comma list).",
    )
    TOOLS: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra tools, as import paths 'pkg.module:attr' (comma list): "
        "an @tool function, a Tool or a list of them.",
    )
    TOOL_TIMEOUT_SECONDS: float = Field(
        30.0, gt=0, description="Longest a tool call may take; past it the call fails."
    )
    MAX_INPUT_CHARS: int = Field(2000, ge=1, description="Longest accepted agent input.")
    MAX_STEPS: int = Field(10, ge=1, le=100, description="Default step budget of a run.")
    RUN_TIMEOUT_SECONDS: float = Field(120.0, gt=0, description="Deadline of one agent run.")
    INPUT_TIMEOUT_SECONDS: float = Field(
        300.0, gt=0, description="How long a foreground run waits for human input."
    )
    SSE_KEEPALIVE_SECONDS: float = Field(
        15.0, gt=0, description="Seconds between SSE keep-alive comments."
    )
    SHUTDOWN_STREAM_GRACE_SECONDS: int = Field(
        10,
        ge=0,
        le=300,
        description="On SIGTERM, open streams get this long to finish before a 'shutdown' event.",
    )
    SESSION_MAX_MESSAGES: int = Field(
        50, ge=2, le=10_000, description="Messages kept per session (oldest dropped)."
    )
    SESSION_TTL_SECONDS: int = Field(
        86_400, ge=60, description="Sliding expiry of an idle session."
    )

    @field_validator("CORS_ORIGINS", "AGENTS", "TOOLS", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("RATE_LIMIT_ROUTES", mode="before")
    @classmethod
    def _parse_routes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("RATE_LIMIT_ROUTES")
    @classmethod
    def _check_routes(cls, value: dict[str, str]) -> dict[str, str]:
        for route, limit in value.items():
            method, _, path = route.partition(" ")
            if not method.isupper() or not path.startswith("/"):
                raise ValueError(f"RATE_LIMIT_ROUTES key {route!r} must look like 'POST /v1/x'")
            parse(limit)  # raises ValueError on a malformed limit string
        return value

    @field_validator("JWT_ISSUER", "JWT_AUDIENCE", "PROMETHEUS_MULTIPROC_DIR", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("API_PREFIX")
    @classmethod
    def _normalise_prefix(cls, value: str) -> str:
        return "/" + value.strip("/") if value.strip("/") else ""

    @model_validator(mode="before")
    @classmethod
    def _leave_gunicorn_variables_to_gunicorn(cls, data: Any) -> Any:
        # `.env` may also hold the variables docker/gunicorn.conf.py reads; every other
        # unknown name is still refused (extra="forbid").
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in GUNICORN_ENV}
        return data

    @field_validator("LLM_PROVIDER", mode="before")
    @classmethod
    def _strip_provider(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _leave_provider_variables_to_the_provider(cls, data: Any) -> Any:
        # .env lines with a provider's prefix belong to its model (checked in __init__);
        # every other unknown name is still refused (extra="forbid").
        if not isinstance(data, dict):
            return data
        entry = str(data.get("LLM_PROVIDER") or DEFAULT_PROVIDER).strip()
        prefixes = provider_models(entry, reserved=cls.model_fields)
        return {
            key: value
            for key, value in data.items()
            if key in cls.model_fields or not claimed(key, prefixes)
        }

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # Keyword arguments and the .env file the main settings used go to the provider's
        # model too, so the precedence is the same: arguments > environment > .env.
        self._llm = load_provider_settings(
            self.LLM_PROVIDER,
            overrides=values,
            env_file=values.get("_env_file", self.model_config.get("env_file")),
            env_file_encoding=values.get(
                "_env_file_encoding", self.model_config.get("env_file_encoding")
            ),
            reserved=type(self).model_fields,
        )

    @property
    def llm(self) -> ProviderSettings:
        """The selected LLM provider's settings (OpenAISettings, OfflineSettings, a plug-in's)."""
        return self._llm

    @model_validator(mode="after")
    def _default_route_limits(self) -> Settings:
        # The login limit follows API_PREFIX; a default written as "/v1/..." would not.
        if "RATE_LIMIT_ROUTES" not in self.model_fields_set:
            self.RATE_LIMIT_ROUTES = {f"POST {self.API_PREFIX}/auth/token": "10/minute"}
        return self

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if (refusal := production_refusal(self)) is not None:
            raise ValueError(refusal)
        return self

    def production_warnings(self) -> list[tuple[str, str]]:
        """(setting, why) for values production accepts but should not keep; logged once at
        start-up (app/main.py)."""
        return production_warnings(self)

    @property
    def is_production(self) -> bool:
        return self.ENVIRONMENT == "production"

    @cached_property
    def default_rate_limit(self) -> RateLimitItem:
        return parse(f"{self.RATE_LIMIT_REQUESTS}/{self.RATE_LIMIT_WINDOW} second")

    @cached_property
    def route_rate_limits(self) -> dict[str, RateLimitItem]:
        return {route: parse(limit) for route, limit in self.RATE_LIMIT_ROUTES.items()}
