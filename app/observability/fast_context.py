"""OpenTelemetry's context API for our hot path, each answer in one step.

``trace.get_current_span()`` is four calls deep (get_value, get_current, the runtime
context's get, the context variable) and ends in an ABC isinstance check; ``attach`` and
``detach`` are two calls around the context variable's ``set`` and ``reset``;
``set_span_in_context`` three around a dict copy. A request asks these a dozen times and,
in our measurements, they cost more than a span's start. With the default runtime context
(contextvars) each is one operation on that variable or dict. The names read are private
to opentelemetry-api 1.x: checked at import, and with anything else configured (another
runtime context through OTEL_PYTHON_CONTEXT) every function here is the API's own.
tests/unit/test_fast_context.py holds the answers equal. Imported only when tracing is on.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN, Span

_logger = logging.getLogger(__name__)
_RUNTIME: Any = otel_context._RUNTIME_CONTEXT  # noqa: SLF001 - see the module docstring
_VARIABLE: Any = getattr(_RUNTIME, "_current_context", None)
_SPAN_KEY: Any = getattr(trace.propagation, "_SPAN_KEY", None)
FAST = (
    isinstance(_RUNTIME, ContextVarsRuntimeContext)
    and isinstance(_VARIABLE, ContextVar)
    and isinstance(_SPAN_KEY, str)
)
_SPAN_TYPES: set[type] = set()  # classes seen to be trace.Span (an ABC check each, else)


def current_span(context: Context | None = None) -> Span:
    """``trace.get_current_span(context)``."""
    if not FAST:
        return trace.get_current_span(context)
    span = (_VARIABLE.get() if context is None else context).get(_SPAN_KEY)
    if span is None:
        return INVALID_SPAN
    kind = type(span)
    if kind in _SPAN_TYPES:  # no cast(): it is a call, and these run a dozen times a request
        return span  # type: ignore[return-value]
    if isinstance(span, Span):
        _SPAN_TYPES.add(kind)
        return span
    return INVALID_SPAN


def current_context() -> Context:
    """``opentelemetry.context.get_current()``."""
    return _VARIABLE.get() if FAST else otel_context.get_current()


def with_span(span: Span, context: Context | None = None) -> Context:
    """``trace.set_span_in_context(span, context)``: a new context, the given one (or the
    current one) with ``span`` as its span."""
    if not FAST:
        return trace.set_span_in_context(span, context)
    values = dict(_VARIABLE.get() if context is None else context)
    values[_SPAN_KEY] = span
    return Context(values)


def attach(context: Context) -> Token[Context]:
    """``opentelemetry.context.attach(context)``."""
    return _VARIABLE.set(context) if FAST else otel_context.attach(context)


def detach(token: Token[Context]) -> None:
    """``opentelemetry.context.detach(token)``: a failure is logged, never raised (a
    token reset in another context, say), as the API does."""
    if not FAST:
        otel_context.detach(token)
        return
    try:
        _VARIABLE.reset(token)
    except Exception:
        _logger.exception("Failed to detach context")
