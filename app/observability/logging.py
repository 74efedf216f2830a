"""structlog configured once: JSON in production, console in development.

Every stdlib logger (uvicorn, gunicorn, libraries) goes through the same ProcessorFormatter, so
one redaction processor covers all output, and server lines lose their query strings (a
WebSocket ``?token=``). uvicorn's own access logger is silenced: our access-log middleware
logs requests instead. With TRACING_ENABLED every line written while a span is active
carries its ``trace_id`` and ``span_id`` (app/observability/tracing.py).
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from app.core.config import Settings
from app.observability.redaction import redact_processor, strip_query_strings
from app.observability.tracing import add_trace_ids


def _add_pid(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Under gunicorn, the pid tells which worker wrote the line.
    event_dict["pid"] = os.getpid()
    return event_dict


_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    _add_pid,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _shared_processors(settings: Settings) -> list[Any]:
    # Off: not in the chain at all (no per-line lookup of a span that cannot exist).
    return [*_SHARED_PROCESSORS, add_trace_ids] if settings.TRACING_ENABLED else _SHARED_PROCESSORS


def _renderer(settings: Settings) -> Any:
    use_json = settings.LOG_FORMAT == "json" or (
        settings.LOG_FORMAT == "auto" and settings.is_production
    )
    if use_json:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def logging_config_dict(settings: Settings) -> dict[str, Any]:
    """A dictConfig usable by us and by gunicorn's ``logconfig_dict``."""
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": _shared_processors(settings),
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            strip_query_strings,
            redact_processor,
            _renderer(settings),
        ],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["default"], "level": settings.LOG_LEVEL},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            # The MCP SDK logs every message it handles at INFO; the access log has them.
            "mcp": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


_access_logger: Any = None


def access_logger() -> Any:
    """The logger for per-request lines (configured by configure_logging)."""
    return _access_logger if _access_logger is not None else structlog.get_logger("app.access")


def _build_access_logger(settings: Settings) -> Any:
    """Per-request lines skip the stdlib logging machinery (handler lock, LogRecord,
    formatter): the same processors and redaction, written straight to stdout. Measured
    about half the cost of a line through logging.Logger on the request hot path."""
    level = logging.getLevelNamesMapping()[settings.LOG_LEVEL]
    return structlog.wrap_logger(
        structlog.WriteLogger(sys.stdout),
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_pid,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            # After the redaction: hex ids hold no secret, so the line's scan skips them.
            *([add_trace_ids] if settings.TRACING_ENABLED else []),
            _renderer(settings),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    ).bind(logger="app.access")


def configure_logging(settings: Settings) -> None:
    global _access_logger
    logging.config.dictConfig(logging_config_dict(settings))
    _access_logger = _build_access_logger(settings)
    structlog.configure(
        processors=[
            *_shared_processors(settings),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type: Any, exc: BaseException, tb: Any) -> None:
    structlog.get_logger("app").critical("uncaught_exception", exc_info=(exc_type, exc, tb))
