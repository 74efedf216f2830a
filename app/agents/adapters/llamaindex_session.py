"""A LlamaIndex workflow's Context kept with the session (``ctx.state``), so the next run of
the session goes on where this one ended.

The context travels as its own ``to_dict()`` (JSON, the framework's JsonSerializer). An agent
workflow's memory is the one thing that does not serialise (the framework skips it, warning
that it must be set again), so its messages travel beside the context and come back as the
start event's ``chat_history``, the framework's way to seed an agent's memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workflows import Context, Workflow
from workflows.handler import WorkflowHandler

from app.agents.context import RunContext

STATE_NAME = "llamaindex.context"
VERSION = 1


@dataclass
class SavedSession:
    context: Context | None = None
    chat_history: list[Any] = field(default_factory=list)  # llama-index ChatMessages


async def load_session(workflow: Workflow, ctx: RunContext, *, agent: bool) -> SavedSession:
    """What the session's last run left; empty for a new or stateless session, or when what
    was saved no longer fits (a deployed change of the workflow: the run starts afresh)."""
    raw = None if ctx.state is None else await ctx.state.load(STATE_NAME)
    if raw is None:
        return SavedSession()
    try:
        saved = json.loads(raw)
        if saved.get("version") != VERSION:
            raise ValueError(f"saved as version {saved.get('version')!r}")
        history = _messages(saved["chat_history"]) if agent else []
        return SavedSession(Context.from_dict(workflow, saved["context"]), history)
    except Exception as exc:  # whatever the framework raises for a payload it cannot read
        await ctx.log(
            "The session's saved workflow context could not be restored; starting afresh.",
            level="warning",
            error=type(exc).__name__,
        )
        return SavedSession()


async def save_session(handler: WorkflowHandler, ctx: RunContext, *, agent: bool) -> None:
    """Keep the finished run's context (and an agent's memory) for the session's next run."""
    if ctx.state is None:
        return
    history: list[dict[str, Any]] = []
    if agent:
        memory = await handler.ctx.store.get("memory", default=None)
        if memory is not None:
            history = [m.model_dump(mode="json") for m in await memory.aget_all()]
            # Carried as chat_history instead; the store would skip it with a warning.
            await handler.ctx.store.set("memory", None)
    saved = {"version": VERSION, "context": handler.ctx.to_dict(), "chat_history": history}
    await ctx.state.save(STATE_NAME, json.dumps(saved).encode())


def _messages(items: list[dict[str, Any]]) -> list[Any]:
    from llama_index.core.llms import ChatMessage  # loaded already: an agent workflow is served

    return [ChatMessage.model_validate(item) for item in items]
