"""A support workflow written with LlamaIndex workflows, served by agent-service unchanged.

    AGENTS=support=examples.llamaindex.agent:workflow make run

It needs no model, so it runs as it is: it streams its reply as events with a ``delta``
(tokens), reports progress (steps), asks a person before a refund (``InputRequiredEvent`` ->
``input_required``; the answer comes back as ``HumanResponseEvent``) and remembers the
session's tickets in its own store (``ctx.store``, kept with the session between runs).
"""

import re

from workflows import Context, Workflow, step
from workflows.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent


class TextDelta(Event):
    delta: str  # a text delta: served as a token event


class Progress(Event):
    message: str  # any other streamed event: served as a step event


class SupportFlow(Workflow):
    """Files support tickets; a refund waits for a person's approval."""

    @step
    async def file_ticket(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent | StopEvent:
        tickets = [*await ctx.store.get("tickets", default=[]), str(ev.input)]
        await ctx.store.set("tickets", tickets)
        ctx.write_event_to_stream(Progress(message=f"ticket {len(tickets)} filed"))
        reply = f"Ticket {len(tickets)} filed ({len(tickets)} in this conversation). "
        for word in re.findall(r"\S+\s*", reply):
            ctx.write_event_to_stream(TextDelta(delta=word))
        if "refund" in str(ev.input).lower():
            return InputRequiredEvent(prefix=f"Approve a refund for: {ev.input}? (yes/no)")
        return StopEvent(result=reply.strip())

    @step
    async def decide_refund(self, ev: HumanResponseEvent) -> StopEvent:
        approved = str(ev.response).strip().lower() in {"yes", "y"}
        return StopEvent(result="Refund approved." if approved else "Refund declined.")


# timeout=None: a refund may wait for a person longer than the framework's default 45 s.
workflow = SupportFlow(timeout=None)
