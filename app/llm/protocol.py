"""The provider interface. Providers are built once in the lifespan and closed after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from app.llm.types import LLMRequest, LLMResponse, LLMStreamItem


class LLMError(Exception):
    """The provider failed after its retries. ``code`` is stable and safe to show."""

    def __init__(self, message: str, *, code: str = "llm_error", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class LLMProvider(Protocol):
    name: str  # "offline", "openai"
    model: str  # the default model

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamItem]:
        """Yield LLMDelta items as text arrives, then exactly one LLMFinal.

        Closing the iterator (``aclose``, or cancelling the task consuming it) must close the
        upstream connection at once.
        """
        ...

    async def aclose(self) -> None: ...
