"""OpenTelemetry tracing: the one module the rest of the app calls, cheap when tracing is off.

With ``TRACING_ENABLED=false`` (the default) nothing of OpenTelemetry is imported, the server
middleware is not in the chain, the log processor and exemplars are not installed, and every
hook here is one check of a module global that returns a no-op. With it on,
``configure_tracing`` (app/main.py for the API, app/entrypoints/worker_main.py for a worker)
loads app/observability/tracing_setup.py, which needs the ``tracing`` extra, and builds the
tracer provider from the standard ``OTEL_*`` environment. The spans (docs/architecture.md,
"Tracing"):

    {METHOD} {route}          server request (app/middleware/tracing.py)
      send tasks              a task submitted (its context is stored in the task record)
        process tasks         the worker that runs it continues the trace
          invoke_agent {agent}        one run
            step                      one ctx.begin_step() .. ctx.step_done()
              chat {model}            every LLM call (cached or not), GET/SET llmcache
              execute_tool {tool}

Process-wide state on purpose: the provider is process-wide in OpenTelemetry too, and hooks
deep in agents/, llm/ and tasks/ reach it without any object being threaded through.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from app.core.config import Settings
from app.core.settings_loader import ConfigError

if TYPE_CHECKING:
    import httpx

    from app.observability.tracing_genai import ChatRequestLike
    from app.observability.tracing_http import ServerSpans
    from app.observability.tracing_runs import RunTrace, ToolTrace
    from app.observability.tracing_setup import Tracing

# Where the transport puts the address of the direct peer before uvicorn's proxy-headers
# middleware replaces scope["client"] with the forwarded one (app/entrypoints/http_protocol.py):
# TRACING_TRUST_INCOMING=proxies believes a traceparent only from a trusted proxy.
PEER_SCOPE_KEY = "agent_service.peer"

T = TypeVar("T")

_tracing: Tracing | None = None
# True while a request whose server span was sampled out is handled (and in the tasks it
# starts), set by its server span (tracing_http.py): each later "is this trace recorded?"
# is this one read, here, before any call into the tracing code.
SAMPLED_OUT: ContextVar[bool] = ContextVar("agent_service_sampled_out", default=False)
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()  # stateless: shared


def configure_tracing(settings: Settings, *, role: str) -> None:
    """Build this process's tracer provider (``role``: api or worker, the default service
    name), or make sure none is active when TRACING_ENABLED is false."""
    global _tracing
    previous, _tracing = _tracing, None
    if previous is not None:  # a second app in one process (tests): the old one is done
        previous.shutdown()
    if not settings.TRACING_ENABLED:
        return
    try:
        from app.observability import tracing_setup
    except ImportError as exc:
        raise ConfigError(
            'TRACING_ENABLED=true needs the tracing extra: pip install "agent-service[tracing]" '
            f"({exc})"
        ) from None
    _tracing = tracing_setup.build(settings, role=role)


async def shutdown_tracing() -> None:
    """Export what is buffered and stop (in a thread: the exporter's HTTP calls block)."""
    global _tracing
    tracing, _tracing = _tracing, None
    if tracing is not None:
        import anyio

        await anyio.to_thread.run_sync(tracing.shutdown)


def enabled() -> bool:
    return _tracing is not None


def server_spans() -> ServerSpans | None:
    """What the server middleware uses (None: tracing is off)."""
    return _tracing.server if _tracing is not None else None


# --- propagation ---------------------------------------------------------------------------
def inject_trace_headers(headers: MutableMapping[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``, ``baggage``) of the current span to outgoing
    headers: webhooks, or any other call the app makes by hand. Nothing when tracing is off."""
    if _tracing is not None:
        _tracing.inject(headers)


def current_carrier() -> dict[str, str] | None:
    """The current span's context as headers, to store with work another process picks up
    (a task record, a control message); None when tracing is off or no span is active."""
    return _tracing.carrier() if _tracing is not None else None


def producer_span(destination: str, *, message_id: str) -> contextlib.AbstractContextManager[Any]:
    """``send {destination}``: a message or task handed to another process (current inside,
    so ``current_carrier()`` there names it)."""
    if _tracing is None:
        return _NO_SPAN
    return _tracing.producer(destination, message_id=message_id)


def consumer_span(
    destination: str,
    *,
    message_id: str,
    carrier: Mapping[str, str] | None,
    attributes: Mapping[str, str | int] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """``process {destination}``: handling a message, continuing the trace in ``carrier``."""
    if _tracing is None:
        return _NO_SPAN
    return _tracing.consumer(
        destination, message_id=message_id, carrier=carrier, attributes=attributes or {}
    )


def redis_span(operation: str, target: str) -> contextlib.AbstractContextManager[Any]:
    """``{operation} {target}``: one Redis round trip worth seeing in a trace."""
    if _tracing is None:
        return _NO_SPAN
    return _tracing.redis(operation, target)


# --- runs, tools, model calls --------------------------------------------------------------
def start_run(*, agent: str, run_id: str, session_id: str | None, provider: str) -> RunTrace | None:
    """``invoke_agent {agent}``, current in the run's task from now on (call it there)."""
    if _tracing is None or SAMPLED_OUT.get():
        return None
    return _tracing.start_run(agent=agent, run_id=run_id, session_id=session_id, provider=provider)


def tool_span(
    run: RunTrace | None, *, name: str, call_id: str, arguments: Mapping[str, Any]
) -> contextlib.AbstractContextManager[ToolTrace | None]:
    """``execute_tool {name}`` around one tool call of a traced run."""
    if run is None:
        return _NO_SPAN
    return run.tool(name=name, call_id=call_id, arguments=arguments)


class ChatOutcome:
    """How one model call ended, told by the stream's producer to its ``chat`` span as it
    happens: the final answer (a ``ChatResponseLike``, just before it is yielded) or the
    error that ended the stream. The span ends then, whether or not the caller goes on to
    close the stream."""

    __slots__ = ("_on_end", "error", "response")

    def __init__(self) -> None:
        self.response: Any = None
        self.error: BaseException | None = None
        self._on_end: Callable[[], None] | None = None

    def final(self, response: Any) -> None:
        self.response = response
        self._ended()

    def failed(self, error: BaseException) -> None:
        self.error = error
        self._ended()

    def when_ended(self, callback: Callable[[], None]) -> None:
        self._on_end = callback

    def _ended(self) -> None:
        callback, self._on_end = self._on_end, None
        if callback is not None:
            callback()


def chat_outcome() -> ChatOutcome | None:
    """A call's outcome to fill for its ``chat`` span; None (no span, nothing to fill) with
    tracing off or in a trace that is not sampled."""
    if _tracing is None or SAMPLED_OUT.get() or _tracing.unsampled():
        return None
    return ChatOutcome()


def traced_chat(
    items: AsyncGenerator[T, None],
    *,
    provider: str,
    request: ChatRequestLike,
    server: str | None,
    cacheable: bool,
    outcome: ChatOutcome | None,
) -> AsyncGenerator[T, None]:
    """``chat {model}`` around one model call's stream (``outcome``: from chat_outcome(),
    filled by the producer); the stream itself when there is no outcome to record."""
    if _tracing is None or outcome is None:
        return items
    return _tracing.chat(
        items,
        provider=provider,
        request=request,
        server=server,
        cacheable=cacheable,
        outcome=outcome,
    )


def instrument_httpx(client: httpx.AsyncClient) -> None:
    """Client spans and ``traceparent`` on every request of this client (the LLM provider's)."""
    if _tracing is not None:
        _tracing.instrument_httpx(client)


# --- logs and metrics ----------------------------------------------------------------------
def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the active span, if any (installed
    only when TRACING_ENABLED, app/observability/logging.py)."""
    if _tracing is not None:
        _tracing.add_ids(event_dict)
    return event_dict


def exemplar() -> dict[str, str] | None:
    """Exemplar labels (trace and span id) of the active sampled span, for a histogram."""
    if _tracing is None or SAMPLED_OUT.get():
        return None
    return _tracing.exemplar()
