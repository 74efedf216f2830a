"""One external issuer, checked fully at build time: the OIDC_* group or each OIDC_PROVIDERS item.

Settings only parse the raw values (core imports nothing from security); the rules that need
the scope list live here, and a bad provider stops start-up with one ConfigError line.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.core.config import Settings
from app.core.oidc_settings import OIDC_DEFAULT_ALGORITHMS, OidcAlgorithm
from app.core.settings_loader import ConfigError
from app.security.scopes import parse_scopes

_ALIAS = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


class OidcProvider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str | None = None
    algorithms: tuple[OidcAlgorithm, ...] = OIDC_DEFAULT_ALGORITHMS
    alias: str | None = None
    subject_claim: str = Field("sub", min_length=1)
    roles_claim: str | None = None
    tenant_claim: str | None = None
    role_scopes: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("algorithms")
    @classmethod
    def _some_algorithm(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one algorithm is needed")
        return value

    @field_validator("role_scopes")
    @classmethod
    def _known_scopes(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for scopes in value.values():
            parse_scopes(scopes)  # ValueError names the unknown ones
        return value

    @field_validator("alias")
    @classmethod
    def _alias_shape(cls, value: str | None) -> str | None:
        if value is not None and not _ALIAS.match(value):
            raise ValueError("alias must be 1-32 of a-z, 0-9, '-', '_' (it is part of ids)")
        return value

    @model_validator(mode="after")
    def _urls_are_http(self) -> OidcProvider:
        for url in (self.issuer, self.jwks_url):
            if url is not None and urlsplit(url).scheme not in ("https", "http"):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return self

    @property
    def principal_alias(self) -> str:
        """The issuer's name in principal ids: stable across restarts and replicas."""
        return self.alias or hashlib.sha256(self.issuer.encode()).hexdigest()[:12]


def _plain_http_outside_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS


def _single_provider(settings: Settings) -> dict[str, Any]:
    return {
        "issuer": settings.OIDC_ISSUER,
        "audience": settings.OIDC_AUDIENCE,
        "jwks_url": settings.OIDC_JWKS_URL,
        "algorithms": settings.OIDC_ALGORITHMS,
        "alias": settings.OIDC_ALIAS,
        "subject_claim": settings.OIDC_SUBJECT_CLAIM,
        "roles_claim": settings.OIDC_ROLES_CLAIM,
        "tenant_claim": settings.OIDC_TENANT_CLAIM,
        "role_scopes": settings.OIDC_ROLE_SCOPES,
    }


def _invalid(setting: str, exc: ValidationError) -> ConfigError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )
    return ConfigError(f"{setting}: {problems}")


def providers_from_settings(settings: Settings) -> list[OidcProvider]:
    """The configured issuers (empty = OIDC off); ConfigError for anything unsafe or unclear."""
    if settings.OIDC_PROVIDERS and settings.OIDC_ISSUER:
        raise ConfigError("OIDC_PROVIDERS and OIDC_ISSUER: set one of them, not both")
    if settings.OIDC_ISSUER:
        raw, setting = [_single_provider(settings)], "OIDC_ISSUER"
    else:
        raw, setting = settings.OIDC_PROVIDERS, "OIDC_PROVIDERS"
    providers = []
    for index, item in enumerate(raw):
        where = setting if setting == "OIDC_ISSUER" else f"{setting}[{index}]"
        try:
            providers.append(OidcProvider.model_validate(item))
        except ValidationError as exc:
            raise _invalid(where, exc) from None
    _check_together(providers, settings)
    return providers


def _check_together(providers: list[OidcProvider], settings: Settings) -> None:
    issuers = [provider.issuer for provider in providers]
    if len(set(issuers)) != len(issuers):
        raise ConfigError("OIDC_PROVIDERS: an issuer is listed twice")
    aliases = [provider.principal_alias for provider in providers]
    if len(set(aliases)) != len(aliases):
        raise ConfigError("OIDC_PROVIDERS: two issuers share an alias (principal ids would clash)")
    if settings.JWT_ISSUER is not None and settings.JWT_ISSUER in issuers:
        # Routing is by 'iss': our own tokens must never be mistaken for the IdP's, or back.
        raise ConfigError("OIDC issuer equals JWT_ISSUER: give this service's tokens their own")
    if settings.is_production:
        for provider in providers:
            for url in (provider.issuer, provider.jwks_url):
                if url is not None and _plain_http_outside_loopback(url):
                    raise ConfigError(f"OIDC: {url!r} must be https in production")
