"""One log line per failed LLM call, once the provider has given up (retries included).

``llm_call_failed`` carries what an operator needs to act without a debugger: provider,
model, the server's host (never the URL with its credentials), the cause (exception and
message, or status and a short body excerpt with the key removed), attempts made, the error
code and whether retrying can help. What the client reads is the error's message.
"""

from __future__ import annotations

import structlog

from app.llm.protocol import LLMError

log = structlog.get_logger(__name__)


def log_failure(*, provider: str, model: str, error: BaseException) -> None:
    if isinstance(error, LLMError):
        log.error(
            "llm_call_failed",
            provider=provider,
            model=model,
            host=error.host,
            code=error.code,
            retryable=error.retryable,
            retry_after_s=error.retry_after,
            status=error.status,
            attempts=error.attempts,
            cause=error.cause or str(error),
            detail=str(error),
        )
    else:  # a plug-in provider's bug: the agent's own log line carries the traceback
        log.error(
            "llm_call_failed",
            provider=provider,
            model=model,
            code="llm_error",
            cause=f"{type(error).__name__}: {error}",
        )
