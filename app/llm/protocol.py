"""The provider interface. Providers are built once in the lifespan and closed after it.

A provider is chosen with ``LLM_PROVIDER`` (app/llm/providers.py): a built-in name or a
plug-in's ``ProviderSpec`` as ``package.module:attribute``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from app.llm.types import LLMRequest, LLMResponse, LLMStreamItem


class LLMError(Exception):
    """The provider failed after its retries.

    ``str(error)`` and ``code`` reach the client, so they must be safe to show and should say
    what happened and whether retrying helps (``retryable``; ``retry_after`` in seconds when
    the provider said). The diagnostic fields are for the one ``llm_call_failed`` log line
    only: ``cause`` (exception or status and a body excerpt, credentials removed), ``host``
    (never the full URL), ``attempts`` and ``status``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "llm_error",
        retryable: bool = False,
        retry_after: float | None = None,
        cause: str | None = None,
        host: str | None = None,
        attempts: int = 1,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.cause = cause
        self.host = host
        self.attempts = attempts
        self.status = status

    def copy(self) -> LLMError:
        """A fresh instance (each caller of a shared call gets its own traceback)."""
        return LLMError(
            str(self),
            code=self.code,
            retryable=self.retryable,
            retry_after=self.retry_after,
            cause=self.cause,
            host=self.host,
            attempts=self.attempts,
            status=self.status,
        )


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """What a provider sends when a request leaves a value open (None: nothing is sent).

    A provider that applies such defaults exposes them as ``defaults``, so the response cache
    keys and judges cacheability by the values really sent.
    """

    temperature: float | None = None
    max_tokens: int | None = None


class LLMProvider(Protocol):
    """What every provider implements. It may also have ``defaults: RequestDefaults``."""

    name: str  # "offline", "openai": a metrics label and part of the cache key
    model: str  # the default model

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamItem]:
        """Yield LLMDelta items as text arrives, then exactly one LLMFinal.

        Closing the iterator (``aclose``, or cancelling the task consuming it) must close the
        upstream connection at once. Failures raise LLMError.
        """
        ...

    async def aclose(self) -> None: ...


def provider_defaults(provider: LLMProvider) -> RequestDefaults:
    defaults = getattr(provider, "defaults", None)
    return defaults if isinstance(defaults, RequestDefaults) else RequestDefaults()
