"""Production guards: settings that must not reach production, and ones it should not keep.

Called by Settings' validator (refusals) and logged at start-up (warnings), so a config
error at boot beats a breach at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.secret_strength import (
    HOW_TO_GENERATE,
    MIN_SECRET_BYTES,
    admin_password_weakness,
    secret_weakness,
)

if TYPE_CHECKING:
    from app.core.config import Settings


def production_refusal(settings: Settings) -> str | None:
    """Why production must not start with these settings, or None. Each reason names the
    setting and the rule, never the value (it may be a secret)."""
    if settings.ENVIRONMENT != "production":
        return None
    if settings.SECRET_KEY is None:
        return (
            f"SECRET_KEY must be set in production, at least {MIN_SECRET_BYTES} bytes: "
            f"{HOW_TO_GENERATE}"
        )
    if weakness := secret_weakness(settings.SECRET_KEY.get_secret_value()):
        return f"SECRET_KEY {weakness}: {HOW_TO_GENERATE}"
    pepper = settings.API_KEY_PEPPER.get_secret_value() if settings.API_KEY_PEPPER else ""
    if pepper and (weakness := secret_weakness(pepper)):  # empty = unset (keyring.py)
        return f"API_KEY_PEPPER {weakness}: {HOW_TO_GENERATE}, or unset it"
    if settings.ADMIN_PASSWORD is not None and (
        weakness := admin_password_weakness(
            settings.ADMIN_PASSWORD.get_secret_value(), username=settings.ADMIN_USERNAME
        )
    ):
        return (
            f"ADMIN_PASSWORD {weakness}: production needs at least 12 characters that are "
            "not the user name (a password manager's random one)"
        )
    if not settings.AUTH_ENABLED:
        return "AUTH_ENABLED=false is refused in production"
    if "*" in settings.CORS_ORIGINS and settings.CORS_ALLOW_CREDENTIALS:
        return "CORS_ORIGINS='*' with CORS_ALLOW_CREDENTIALS=true is refused in production"
    if trusts_every_proxy(settings.FORWARDED_ALLOW_IPS):
        return (
            "FORWARDED_ALLOW_IPS must not trust every address in production: any client "
            "could then pick its own IP (X-Forwarded-For) and with it its rate-limit "
            "bucket. Set the proxy's addresses or range, e.g. the ingress controller's "
            "pod CIDR"
        )
    if not settings.RATE_LIMIT_ENABLED:
        return (
            "RATE_LIMIT_ENABLED=false is refused in production: the login and failed-"
            "authentication limits stop password guessing. If a gateway limits requests, "
            "raise RATE_LIMIT_REQUESTS instead"
        )
    return None


def production_warnings(settings: Settings) -> list[tuple[str, str]]:
    """(setting, why) for values production accepts but should not keep."""
    if not settings.is_production:
        return []
    warnings: list[tuple[str, str]] = []
    if settings.CACHE_ENABLED and settings.CACHE_SCOPE == "global":
        warnings.append(
            (
                "CACHE_SCOPE",
                "global: every caller shares cached LLM answers, so whoever sends the "
                "same text as another caller gets X-Cache: HIT and that caller's answer, "
                "and learns what was asked. Fine for one organisation; set "
                "CACHE_SCOPE=principal when callers must not learn about each other.",
            )
        )
    if settings.DOCS_ENABLED:
        warnings.append(
            (
                "DOCS_ENABLED",
                "true: /docs, /redoc and /openapi.json describe every route to anyone "
                "who can reach the service. Set DOCS_ENABLED=false unless they are meant "
                "to be public.",
            )
        )
    return warnings


def trusts_every_proxy(allowed: str) -> bool:
    """FORWARDED_ALLOW_IPS names every address ('*', or a /0 network)."""
    entries = {entry.strip() for entry in allowed.split(",")}
    return bool(entries & {"*", "0.0.0.0/0", "::/0"})
