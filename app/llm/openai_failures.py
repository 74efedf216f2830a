"""What went wrong with an OpenAI-compatible server, in words a client can act on.

Each failure becomes an ``LLMError`` whose message says what happened and whether retrying
helps ("the model provider rejected the API key (HTTP 401); retrying will not help"), plus a
``cause`` for the log: the exception, or the status and a short excerpt of the body with the
API key removed. ``Failure.retry`` says whether the provider itself should try again: only
when the request surely did not reach a busy model (connection errors, 429, 408, 5xx).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from app.llm.protocol import LLMError

RATE_LIMITED = "llm_rate_limited"
UNAVAILABLE = "llm_unavailable"
TIMEOUT = "llm_timeout"
BAD_RESPONSE = "llm_bad_response"
UNAUTHORIZED = "llm_unauthorized"  # 401/403: the key is wrong
MODEL_NOT_FOUND = "llm_model_not_found"  # 404: no such model (or a wrong base URL)
REJECTED = "llm_rejected"  # other 4xx: the server refused this request
ERROR_BODY_BYTES = 2048  # read at most this much of an error body
_EXCERPT_CHARS = 200  # and log at most this much of it
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def llm_error(
    what: str, code: str, *, retryable: bool, cause: str | None = None, status: int | None = None
) -> LLMError:
    advice = "retrying may help" if retryable else "retrying will not help"
    what = what[:1].upper() + what[1:]  # a sentence, as every problem detail is
    message = f"{what}; {advice}."
    return LLMError(message, code=code, retryable=retryable, cause=cause, status=status)


def bad_response(what: str) -> LLMError:
    """The server answered 200 with something that is not a well-formed answer."""
    return llm_error(f"the model provider {what}", BAD_RESPONSE, retryable=False, cause=what)


@dataclass(slots=True)
class Failure:
    error: LLMError
    retry: bool  # the provider may try again itself (within OPENAI_MAX_RETRIES)


def is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower()


async def read_error_body(response: httpx.Response) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_BYTES:
            break
    return body[:ERROR_BODY_BYTES]


def excerpt(body: bytes, *, secret: str | None, html: bool) -> str:
    """A short, single-line, credential-free view of a body for the log."""
    text = body.decode("utf-8", "replace")
    if secret:
        text = text.replace(secret, "***")
    if html:
        text = _TAGS.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:_EXCERPT_CHARS] + ("..." if len(text) > _EXCERPT_CHARS else "")


def status_failure(
    response: httpx.Response, body: bytes, *, model: str, secret: str | None
) -> Failure:
    status = response.status_code
    html = is_html(response)
    content_type = response.headers.get("content-type", "no content type").split(";")[0]
    cause = f"HTTP {status} ({content_type}): {excerpt(body, secret=secret, html=html)}"
    transient = status in (429, 408) or status >= 500
    if html:
        # A proxy's error page, or a base URL that points at a website rather than the API.
        error = llm_error(
            f"the model provider answered HTTP {status} with an HTML page instead of an API "
            "response (a failing proxy or a wrong base URL)",
            BAD_RESPONSE,
            retryable=transient,
            cause=cause,
            status=status,
        )
        return Failure(error, retry=transient)
    if status == 429:
        what, code = "the model provider is rate limiting this service (HTTP 429)", RATE_LIMITED
    elif status == 408:
        what, code = "the model provider timed out (HTTP 408)", TIMEOUT
    elif status >= 500:
        what, code = f"the model provider failed (HTTP {status})", UNAVAILABLE
    elif status in (401, 403):
        what, code = f"the model provider rejected the API key (HTTP {status})", UNAUTHORIZED
    elif status == 404:
        what = f"model {model!r} was not found at the model provider (HTTP 404)"
        code = MODEL_NOT_FOUND
    else:
        what, code = f"the model provider refused the request (HTTP {status})", REJECTED
    error = llm_error(what, code, retryable=transient, cause=cause, status=status)
    if transient:
        error.retry_after = retry_after(response.headers.get("Retry-After"))
    return Failure(error, retry=transient)


def transport_failure(
    exc: httpx.HTTPError, *, read_timeout: float, connect_timeout: float, mid_stream: bool
) -> Failure:
    # Connection failures never reached the model: safe to retry. A read timeout may mean the
    # model is busy generating, and retrying would double the wait: the client may, we do not.
    # Once text reached the caller nothing is retried here: it would be repeated.
    name = type(exc).__name__
    cause = _describe(exc)
    root = _root(exc)
    if root is not exc and str(root) not in cause:
        cause += f" ({_describe(root)})"  # httpx says "All connection attempts failed"
    if isinstance(exc, httpx.ConnectTimeout):
        what = f"could not connect to the model provider within {connect_timeout:g} s"
        failure = Failure(llm_error(what, TIMEOUT, retryable=True, cause=cause), retry=True)
    elif isinstance(exc, httpx.TimeoutException):
        what = f"the model provider did not answer within {read_timeout:g} s"
        if mid_stream:
            what = f"the model provider stopped sending for {read_timeout:g} s mid-answer"
        failure = Failure(llm_error(what, TIMEOUT, retryable=True, cause=cause), retry=False)
    elif isinstance(exc, httpx.TransportError):
        what = f"the model provider could not be reached ({_REASONS.get(type(root), name)})"
        if mid_stream:
            what = f"the connection to the model provider broke off mid-answer ({name})"
        error = llm_error(what, UNAVAILABLE, retryable=True, cause=cause)
        failure = Failure(error, retry=not mid_stream)
    else:
        what = f"the call to the model provider failed ({name})"
        failure = Failure(llm_error(what, BAD_RESPONSE, retryable=False, cause=cause), retry=False)
    failure.error.__cause__ = exc
    return failure


_REASONS: dict[type[BaseException], str] = {
    ConnectionRefusedError: "connection refused",
    ConnectionResetError: "connection reset",
    socket.gaierror: "host name not found",
}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _root(exc: BaseException) -> BaseException:
    """The first cause in the chain (the OSError under httpx's and httpcore's wrappers)."""
    seen = exc
    for _ in range(8):
        inner = seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
    return seen


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None when absent/invalid."""
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
