"""LLM providers by name: the built-ins, or a plug-in's ProviderSpec (``LLM_PROVIDER``).

``LLM_PROVIDER=offline|openai`` picks a built-in; any other value is an import path
``package.module:attribute`` naming a ``ProviderSpec``, loaded like AGENTS (the working
directory is importable; a failure is one ConfigError line naming the setting). The spec
pairs the provider's settings model (a ``ProviderSettings`` subclass with its own
``env_prefix``, validated when Settings load) with the function that builds the provider::

    class EchoSettings(ProviderSettings):
        model_config = SettingsConfigDict(env_prefix="ECHO_")
        GREETING: str = "hello"

    provider = ProviderSpec(settings_model=EchoSettings, build=EchoProvider)

README ("Adding an LLM provider") has a complete, tested example. This module is also the
one import surface for provider authors: everything a provider needs is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.core.config import Settings
from app.core.imports import import_object
from app.core.llm_settings import (
    OfflineSettings,
    OpenAISettings,
    ProviderSettings,
)
from app.core.settings_loader import ConfigError
from app.llm.offline import OfflineProvider
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.protocol import LLMError, LLMProvider, RequestDefaults
from app.llm.types import (
    ChatMessage,
    LLMDelta,
    LLMFinal,
    LLMRequest,
    LLMResponse,
    LLMStreamItem,
    ToolCall,
    Usage,
)

__all__ = [
    "BUILTIN_PROVIDERS",
    "ChatMessage",
    "LLMDelta",
    "LLMError",
    "LLMFinal",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "LLMStreamItem",
    "ProviderSettings",
    "ProviderSpec",
    "RequestDefaults",
    "ToolCall",
    "Usage",
    "build_provider",
]

S = TypeVar("S", bound=ProviderSettings)


@dataclass(frozen=True, slots=True)
class ProviderSpec(Generic[S]):
    """How to configure and build one provider. ``build`` gets the validated settings."""

    settings_model: type[S]
    build: Callable[[S], LLMProvider]


BUILTIN_PROVIDERS: dict[str, ProviderSpec[Any]] = {
    "openai": ProviderSpec(OpenAISettings, OpenAICompatProvider.from_settings),
    "offline": ProviderSpec(OfflineSettings, OfflineProvider.from_settings),
}


def resolve_provider(entry: str) -> ProviderSpec[Any]:
    spec = BUILTIN_PROVIDERS.get(entry)
    if spec is not None:
        return spec
    loaded = import_object(entry, setting="LLM_PROVIDER")
    if not isinstance(loaded, ProviderSpec):
        raise ConfigError(
            f"LLM_PROVIDER: {entry!r} is a {type(loaded).__name__}, not an "
            "app.llm.providers.ProviderSpec"
        )
    return loaded


def build_provider(settings: Settings) -> LLMProvider:
    spec = resolve_provider(settings.LLM_PROVIDER)
    # settings.llm was validated with the same spec's model when Settings loaded.
    assert isinstance(settings.llm, spec.settings_model)  # noqa: S101
    return spec.build(settings.llm)
