"""The public surface for agent and tool authors: import from here, not from ``app.*``.

Everything below is kept stable; the modules behind it may move. Serve your code without
editing ``app/``: ``AGENTS=mypkg.agents:support`` and ``TOOLS=mytools:order_status`` (comma
lists of ``package.module:attribute``, imported with the working directory on ``sys.path``).

Agents
    ``@agent(name=, description=, streaming=True, human_input=False, tools=False)`` turns an
    async generator ``(input: str, ctx: RunContext) -> AsyncIterator[Event]`` into an agent
    (its ``AgentCapabilities`` come from those flags). ``input_model=Model`` (a pydantic
    model): the body's ``input`` is an object validated against it (422 with the field
    errors otherwise; a string holding a JSON object is accepted too), the function receives
    the ``Model`` instance, and discovery shows its schema. A class with ``name``,
    ``description``, ``input_schema``, ``capabilities`` and ``run`` is one too (the ``Agent``
    protocol; an optional ``input_model`` attribute works as above). The name must match
    ``AGENT_NAME_PATTERN`` (lowercase letters, digits, ``_`` and ``-``); a bad one stops
    start-up. The run's output is the last ``MessageEvent`` (role assistant)
    or, without one, the joined ``TokenEvent`` texts. Raise ``RunFailure(message, code=...)``
    to end a run with an ``error`` event; any other exception ends it as ``agent_error``.

``RunContext`` (the ``ctx`` argument)
    - ``llm.complete(LLMRequest) -> LLMResponse`` (content, ``ToolCall``s, usage): cached,
      metered, cancellable. ``StreamedCall(ctx, request)`` streams one call to the client
      as ``TokenEvent``s and keeps the whole ``.response``.
    - ``history``: the session's ``ChatMessage``s; ``params``: the request's params
      (``generation_params(ctx.params)`` reads temperature and max_tokens).
    - ``checkpoint()``: a pause point; ``begin_step()`` / ``step_done(...)``: the step
      budget (``max_steps``); ``plan(items)``, ``emit(event)``; ``remaining_seconds``.
    - ``log(message, level=..., **data)``: a progress note for humans (``LogEvent``);
      ``summarize_memory(summary, messages_summarized=...)``: what the agent kept after
      compacting its working memory (``MemorySummaryEvent``).
    - ``ask(prompt, kind=..., choices=...)``: human input (``InputKind`` is "text",
      "choice" or "confirm").
    - ``tools``: the registry (``all()``; ``specs()``, the ``ToolSpec``s to pass as
      ``LLMRequest(tools=...)``); ``call_tool(call_id, name, arguments) -> ToolOutcome``.

Tools
    ``@tool`` (or ``@tool(name=, description=)``) turns a typed function, sync or async,
    into a ``Tool``. Its parameters' type hints and defaults become the JSON schema the model
    sees (pydantic: ``Literal``, ``Optional``, models, ``Annotated[int, Field(ge=1,
    description=...)]``); the docstring's first paragraph is the description. Arguments are
    validated against that schema; sync functions run in a worker thread; every call has
    ``TOOL_TIMEOUT_SECONDS``. Raise ``ToolError("message for the model")`` to refuse input.
    A refusal, a validation error, any exception and a timeout all come back as
    ``ToolOutcome(output=<why>, success=False)``: the run goes on and the model can retry.
    Return a ``str``, or anything pydantic can turn into JSON.

Events
    ``TokenEvent``, ``MessageEvent``, ``PlanEvent``, ``StepEvent``, ``ToolCallEvent``,
    ``ToolResultEvent``, ``LogEvent``, ``MemorySummaryEvent``, ``InputRequired``,
    ``ErrorEvent`` (agents yield or emit these);
    ``RunStarted`` and ``RunCompleted`` are published by the service. ``Event`` is their union.
"""

from __future__ import annotations

from app.agents.context import RunContext
from app.agents.errors import RunFailure
from app.agents.events import (
    ErrorEvent,
    Event,
    InputKind,
    InputRequired,
    LogEvent,
    MemorySummaryEvent,
    MessageEvent,
    PlanEvent,
    RunCompleted,
    RunStarted,
    StepEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from app.agents.protocol import AGENT_NAME_PATTERN, Agent, AgentCapabilities
from app.agents.registry import agent
from app.agents.streaming import StreamedCall, generation_params
from app.agents.tools.decorator import tool
from app.agents.tools.registry import Tool, ToolError, ToolOutcome
from app.llm.types import ChatMessage, LLMRequest, LLMResponse, ToolCall, ToolSpec

__all__ = [
    "AGENT_NAME_PATTERN",
    "Agent",
    "AgentCapabilities",
    "ChatMessage",
    "ErrorEvent",
    "Event",
    "InputKind",
    "InputRequired",
    "LLMRequest",
    "LLMResponse",
    "LogEvent",
    "MemorySummaryEvent",
    "MessageEvent",
    "PlanEvent",
    "RunCompleted",
    "RunContext",
    "RunFailure",
    "RunStarted",
    "StepEvent",
    "StreamedCall",
    "TokenEvent",
    "Tool",
    "ToolCall",
    "ToolCallEvent",
    "ToolError",
    "ToolOutcome",
    "ToolResultEvent",
    "ToolSpec",
    "agent",
    "generation_params",
    "tool",
]
