"""Keep credentials out of logs, whatever logger or library writes them.

Two nets: values under sensitive key names are replaced wholesale, and credential-shaped
substrings (Bearer tokens, JWTs, our API keys, ``token=`` query parameters) are masked in every
string, so a secret inside an exception message or a URL is caught too. Strings are also
matched after percent-decoding, as the app reads them (``?%74oken=<jwt>`` authenticates as
``?token=``). Besides, server log lines (uvicorn, gunicorn) lose their query strings whole:
what a client puts there is not ours to keep.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"(authorization|cookie|x-api-key|api_key|apikey|password|passwd|secret|token|"
    r"sec-websocket-protocol|credential|pepper)",
    re.IGNORECASE,
)
# Keys that contain a sensitive word but describe, not carry, a credential.
_SAFE_KEYS = frozenset(
    {
        "token_type",
        "tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "tokens_saved",
        "max_tokens",
        "tokens_per_second",
        "response_tokens",
        "key_prefix",
        "prefix",
    }
)

_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"\bask_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{16,}"),  # our API keys
    re.compile(r"(?i)((?:token|access_token|api_key|password|secret)=)[^&\s\"']+"),
)


# Percent-decoding rounds: a value decoded once by the app may have been encoded twice.
_DECODE_ROUNDS = 3
_SERVER_LOGGERS = ("uvicorn", "gunicorn")
_QUERY = re.compile(r"(/[^\s\"'?]*)\?[^\s\"']*")


def _apply_patterns(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def _percent_decoded(text: str) -> str:
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _mask(text: str) -> str:
    if not any(marker in text for marker in ("earer", "asic", "eyJ", "ask_", "=", "%")):
        return text  # fast path: nothing credential-shaped
    masked = _apply_patterns(text)
    if "%" in masked:
        decoded = _percent_decoded(masked)
        if decoded != masked:
            redone = _apply_patterns(decoded)
            if redone != decoded:  # a credential hid behind percent-encoding
                return redone
    return masked


@functools.lru_cache(maxsize=1024)
def _is_sensitive(key: str) -> bool:
    return key not in _SAFE_KEYS and _SENSITIVE_KEY.search(key) is not None


def redact_value(key: str, value: Any) -> Any:
    if _is_sensitive(key):
        return REDACTED if value not in (None, "") else value
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, item) for item in value]
    return value


def strip_query_strings(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a server's log line (uvicorn's ``"WebSocket /path?query"``)
    keeps the path and drops the query string."""
    name = event_dict.get("logger")
    event = event_dict.get("event")
    if (
        isinstance(name, str)
        and name.startswith(_SERVER_LOGGERS)
        and isinstance(event, str)
        and "?" in event
    ):
        event_dict["event"] = _QUERY.sub(r"\1", event)
    return event_dict


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: applied last, just before rendering."""
    return {key: redact_value(key, value) for key, value in event_dict.items()}
