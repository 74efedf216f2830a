"""A failure of the agent's own model client, as our model failures read.

The framework's model classes raise ModelAPIError subclasses by category; the run then ends
with the same ``llm_*`` code, status (502 on invoke) and retry advice as a failure of our own
LLM client, instead of a bare ``agent_error``. The provider's body stays in the log: it is not
ours to show.
"""

from __future__ import annotations

import structlog
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
)

from app.llm.openai_failures import (
    MODEL_NOT_FOUND,
    RATE_LIMITED,
    REJECTED,
    TIMEOUT,
    UNAUTHORIZED,
    UNAVAILABLE,
    llm_error,
)
from app.llm.protocol import LLMError

log = structlog.get_logger(__name__)

# (category, what happened, code, retrying may help), the first that matches.
_CATEGORIES: tuple[tuple[type[ModelAPIError], str, str, bool], ...] = (
    (ModelRateLimitError, "the model provider is rate limiting this agent", RATE_LIMITED, True),
    (ModelTimeoutError, "the model provider timed out", TIMEOUT, True),
    (ModelRequestTimeout, "the model provider timed out", TIMEOUT, True),
    (ModelConnectionError, "the model provider could not be reached", UNAVAILABLE, True),
    (ModelUnavailableError, "the model provider is unavailable", UNAVAILABLE, True),
    (ModelServerError, "the model provider failed", UNAVAILABLE, True),
    (ModelAuthenticationError, "the model provider rejected the credentials", UNAUTHORIZED, False),
    (ModelNotFoundError, "the model was not found at the model provider", MODEL_NOT_FOUND, False),
    (ModelRequestRejectedError, "the model provider refused the request", REJECTED, False),
)


def model_failure(exc: ModelAPIError) -> LLMError:
    status = exc.status_code if isinstance(exc, ModelHTTPError) else None
    what, code, retryable = "the model provider failed", "llm_error", False
    for category, text, category_code, transient in _CATEGORIES:
        if isinstance(exc, category):
            what, code, retryable = text, category_code, transient
            break
    if status is not None:
        what = f"{what} (HTTP {status})"
    log.warning(
        "pydantic_ai_model_failed",
        model=exc.model_name,
        code=code,
        error_type=type(exc).__name__,
        status=status,
        cause=str(exc)[:300],
    )
    error = llm_error(what, code, retryable=retryable, cause=type(exc).__name__, status=status)
    error.retry_after = exc.retry_after if retryable else None
    return error
