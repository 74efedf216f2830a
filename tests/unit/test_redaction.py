"""Credentials never reach log output, whichever logger writes them."""

from __future__ import annotations

import io
import logging

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from app.core.config import Settings
from app.observability.logging import configure_logging
from app.observability.redaction import REDACTED, redact_value
from app.security.api_keys import generate_api_key

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyOmFkbWluIn0.c2lnbmF0dXJlLXZhbHVl"


def test_sensitive_keys_are_replaced_whole() -> None:
    event = redact_value(
        "headers", {"Authorization": "Bearer abc", "X-API-Key": "k", "accept": "*"}
    )
    assert event == {"Authorization": REDACTED, "X-API-Key": REDACTED, "accept": "*"}
    assert redact_value("password", "hunter2") == REDACTED
    assert redact_value("client_secret", "s") == REDACTED
    # Counting fields that merely contain the word stay readable.
    assert redact_value("total_tokens", 12) == 12


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40))
def test_credentials_inside_free_text_are_masked(noise: str) -> None:
    key = generate_api_key().plaintext
    text = f"{noise} Authorization: Bearer {JWT} key={key} url=/ws?token=abc123 {noise}"
    masked = redact_value("event", text)
    assert JWT not in masked
    assert key not in masked
    assert "abc123" not in masked


def test_log_output_of_every_logger_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(_env_file=None, LOG_FORMAT="json"))
    key = generate_api_key().plaintext
    structlog.get_logger("app.test").info(
        "login", password="hunter2-secret", token=JWT, detail=f"used {key}"
    )
    logging.getLogger("uvicorn.error").error("bad header Authorization: Bearer %s", JWT)
    logging.getLogger("some.library").warning("GET /v1/agents/chat/ws?token=%s", JWT)
    try:
        raise ValueError(f"failed with api key {key}")
    except ValueError:
        structlog.get_logger("app.test").exception("boom")
    out = capsys.readouterr().out
    assert out.count("\n") >= 4
    for secret in ("hunter2-secret", JWT, key):
        assert secret not in out
    assert REDACTED in out


def test_console_format_is_redacted_too() -> None:
    configure_logging(Settings(_env_file=None, LOG_FORMAT="console"))
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    structlog.get_logger("x").info("hello", api_key="ask_abcdefgh_" + "z" * 32)
    assert "zzzz" not in stream.getvalue()
