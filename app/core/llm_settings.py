"""Each LLM provider's own settings: a pydantic-settings model with its own env prefix.

``Settings`` holds ``LLM_PROVIDER`` only. The provider's variables (``OPENAI_*``, ``OFFLINE_*``
or a plug-in's prefix) belong to the provider's model, a ``ProviderSettings`` subclass, read
from the same places with the same precedence as ``Settings``: keyword arguments, then the
environment, then the same ``.env`` file. A ``.env`` line with a provider's prefix that its
model does not declare (``OPENAI_MODLE``) is refused like any other unknown name.

The built-in models live here, with the rest of the configuration, so that Settings and
``agent-service settings`` know them without importing app/llm; the providers live in app/llm.
A plug-in named ``package.module:attribute`` is imported here to read its ``settings_model``
(app/llm/providers.py checks the rest of its ProviderSpec when it builds the provider).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.urls import without_credentials


class ProviderSettings(BaseSettings):
    """Base of every provider's settings. Subclasses set ``env_prefix`` and declare fields
    named as the variable without its prefix: ``OPENAI_MODEL`` is ``MODEL``."""

    model_config = SettingsConfigDict(
        env_file=None,  # given per load: the file the main Settings read
        env_file_encoding="utf-8",
        dotenv_filtering="match_prefix",  # .env lines of other prefixes are not ours
        extra="forbid",  # ... but an unknown name with our prefix is a typo
        case_sensitive=True,
        validate_default=True,
    )

    def public_summary(self) -> dict[str, Any]:
        """The values safe to log at start-up: secrets left out, URLs without credentials."""
        summary: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                continue
            if isinstance(value, str) and "://" in value:
                value = without_credentials(value)
            summary[name.lower()] = value
        return summary


class OfflineSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="OFFLINE_")

    LATENCY_MS: int = Field(20, ge=0, description="Offline LLM: delay before the first token.")
    TOKENS_PER_SECOND: float = Field(
        200.0, ge=0, description="Offline LLM: streaming rate; 0 = as fast as possible."
    )
    RESPONSE_TOKENS: int | None = Field(
        None, ge=1, description="Offline LLM: fixed answer length (benchmarks); unset = natural."
    )


class OpenAISettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="OPENAI_")

    BASE_URL: str = Field(
        "https://api.openai.com/v1", description="OpenAI-compatible base URL (vLLM, Ollama, ...)."
    )
    API_KEY: SecretStr | None = Field(None, description="API key for the OpenAI provider.")
    MODEL: str = Field("gpt-4o-mini", description="Model name sent to the provider.")
    TEMPERATURE: float = Field(
        0.0, ge=0, le=2, description="Default temperature (0 = deterministic, cacheable)."
    )
    MAX_TOKENS: int | None = Field(None, ge=1, description="Default max completion tokens.")
    TIMEOUT_SECONDS: float = Field(60.0, gt=0, description="Read timeout per LLM call.")
    CONNECT_TIMEOUT_SECONDS: float = Field(5.0, gt=0, description="Connect timeout.")
    MAX_RETRIES: int = Field(
        2, ge=0, le=10, description="Retries on 429/5xx/connection errors (honours Retry-After)."
    )


BUILTIN_PROVIDER_SETTINGS: dict[str, type[ProviderSettings]] = {
    "openai": OpenAISettings,
    "offline": OfflineSettings,
}
DEFAULT_PROVIDER = "offline"


def env_prefix(model: type[ProviderSettings]) -> str:
    return str(model.model_config.get("env_prefix") or "")


def documented_fields() -> Iterator[tuple[str, FieldInfo]]:
    """(variable name, FieldInfo) of every built-in provider setting, for the reference."""
    for model in BUILTIN_PROVIDER_SETTINGS.values():
        prefix = env_prefix(model)
        for name, field in model.model_fields.items():
            yield prefix + name, field


def _config_error(message: str) -> Exception:
    # Imported late: settings_loader imports config, which imports this module.
    from app.core.settings_loader import ConfigError

    return ConfigError(f"LLM_PROVIDER: {message}")


def plugin_settings_model(entry: str, *, reserved: Collection[str]) -> type[ProviderSettings]:
    """Import the ProviderSpec ``entry`` names and return its settings model, checked."""
    from app.core.imports import import_object

    if ":" not in entry:
        builtin = ", ".join(BUILTIN_PROVIDER_SETTINGS)
        raise _config_error(
            f"{entry!r} is neither a built-in provider ({builtin}) "
            "nor an import path 'package.module:attribute'"
        )
    spec = import_object(entry, setting="LLM_PROVIDER")
    model = getattr(spec, "settings_model", None)
    if not callable(getattr(spec, "build", None)) or model is None:
        raise _config_error(
            f"{entry!r} is a {type(spec).__name__}, not a ProviderSpec(settings_model, build) "
            "(see README, 'Adding an LLM provider')"
        )
    if not (isinstance(model, type) and issubclass(model, ProviderSettings)):
        raise _config_error(f"the settings_model of {entry!r} must subclass ProviderSettings")
    prefix = env_prefix(model)
    if not prefix.endswith("_") or prefix == "_":
        raise _config_error(f"{model.__name__} of {entry!r} needs an env_prefix like 'MYLLM_'")
    if any(name.startswith(prefix) for name in reserved):
        raise _config_error(f"env_prefix {prefix!r} of {entry!r} clashes with a main setting")
    return model


def provider_models(entry: str, *, reserved: Collection[str]) -> dict[str, type[ProviderSettings]]:
    """env prefix -> model of every provider whose variables are accepted: the built-ins
    (a .env may configure more than the one in use) and a plug-in, which may take over a
    built-in's prefix (e.g. to extend OpenAISettings)."""
    models = {env_prefix(model): model for model in BUILTIN_PROVIDER_SETTINGS.values()}
    if entry not in BUILTIN_PROVIDER_SETTINGS:
        plugin = plugin_settings_model(entry, reserved=reserved)
        models[env_prefix(plugin)] = plugin
    return models


def selected_model(entry: str, *, reserved: Collection[str]) -> type[ProviderSettings]:
    builtin = BUILTIN_PROVIDER_SETTINGS.get(entry)
    return builtin if builtin is not None else plugin_settings_model(entry, reserved=reserved)


def claimed(name: str, prefixes: Collection[str]) -> bool:
    return any(name.startswith(prefix) for prefix in prefixes)


def load_provider_settings(
    entry: str,
    *,
    overrides: Mapping[str, Any],
    env_file: Any,
    env_file_encoding: Any,
    reserved: Collection[str],
) -> ProviderSettings:
    """Validate every accepted provider's variables; return the selected provider's model.

    ``overrides`` are the keyword arguments given to Settings (``OPENAI_MODEL="x"``). Errors of
    all providers come out as one ValidationError whose locations are the variable names.
    """
    models = provider_models(entry, reserved=reserved)
    chosen = selected_model(entry, reserved=reserved)
    problems: list[InitErrorDetails] = []
    loaded: ProviderSettings | None = None
    for prefix, model in models.items():
        values = {
            name[len(prefix) :]: value
            for name, value in overrides.items()
            if name.startswith(prefix) and name not in reserved
        }
        try:
            instance = model(
                _env_file=env_file,
                _env_file_encoding=env_file_encoding,
                **values,
            )
        except ValidationError as exc:
            problems.extend(_renamed(exc, prefix))
            continue
        if model is chosen:
            loaded = instance
    if problems:
        raise ValidationError.from_exception_data("Settings", problems)
    assert loaded is not None  # noqa: S101 - the chosen model is always among the models
    return loaded


def _renamed(exc: ValidationError, prefix: str) -> Iterator[InitErrorDetails]:
    """The errors located at the variable names (``OPENAI_TEMPERATURE``), values left out."""
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        first = str(loc[0]) if loc else ""
        name = first if first.startswith(prefix) else prefix + first
        detail: InitErrorDetails = {"type": error["type"], "loc": (name, *loc[1:]), "input": None}
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        yield detail
