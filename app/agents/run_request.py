"""What a client asks of a run (RunRequest), and the record a foreground run starts with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.agents.protocol import AgentInput, GivenInput, given_form
from app.agents.run import OnDisconnect
from app.agents.sessions import IfBusy
from app.core.clock import utcnow
from app.llm.types import ChatMessage
from app.security.principals import Principal
from app.store.run_records import RunRecord


@dataclass(frozen=True, slots=True)
class RunRequest:
    agent: str
    input: AgentInput  # what the agent's run receives: the text, or its input_model instance
    principal: Principal
    session_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    bypass_cache: bool = False
    on_disconnect: OnDisconnect = "cancel"
    store: bool = True  # False: no session, no history written
    if_busy: IfBusy = "reject"
    given_input: GivenInput | None = None  # as the client sent it (the record); None: input
    # The conversation so far as the client sent it (OpenAI messages, AG-UI): the run's history
    # in place of the session's. None: the session's (empty without one).
    history: list[ChatMessage] | None = None


def new_record(
    request: RunRequest, agent: str, run_id: str, session_id: str | None, holder: str | None
) -> RunRecord:
    now = utcnow()
    return RunRecord(
        id=run_id,
        kind="run",
        owner=request.principal.id,
        agent=agent,
        input=given_form(request.input if request.given_input is None else request.given_input),
        session_id=session_id,
        max_steps=request.max_steps,
        params=request.params,
        status="running",
        holder=holder,
        attempts=1,
        submitted_at=now,
        started_at=now,
        updated_at=now,
    )
