"""AG-UI interrupts onto our input requests.

Our run waits in ``ctx.ask`` while its AG-UI segment has ended with an interrupt; the
interrupt's id is ``<run id>.<request id>``. The next RunAgentInput on the thread carries
``resume``: ``resolved`` answers the question with ``payload`` (as POST /v1/runs/{id}/input
does), ``cancelled`` cancels the run. Either way the new AG-UI run follows ours from that
question on. A run asks one question at a time, so a resume has exactly one entry. Replaying a
resume whose question was already answered follows the run again and answers nothing (AG-UI's
idempotency rule). Anything that breaks the contract is a RUN_ERROR, as AG-UI asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ag_ui.core import ResumeEntry, RunAgentInput

from app.agents.control_bus import ControlRequest
from app.agents.service import RunService
from app.core.errors import AppError
from app.protocols.agui.event_mapping import parse_interrupt_id
from app.security.principals import Principal


class ResumeRefused(Exception):
    """A resume AG-UI wants answered with RUN_ERROR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    run_id: str
    request_id: str
    entry: ResumeEntry
    pending: bool  # the run still waits for this answer (else: a replayed resume)


def _not_found(interrupt: str) -> ResumeRefused:
    return ResumeRefused(
        "interrupt_not_found", f"No open interrupt {interrupt!r} on this thread to resume."
    )


async def find_target(agui: RunAgentInput, *, principal: Principal, runs: RunService) -> Target:
    entries = agui.resume or []
    if len(entries) != 1:
        raise ResumeRefused(
            "invalid_resume",
            "A resume must answer exactly the one open interrupt of the thread.",
        )
    entry = entries[0]
    ids = parse_interrupt_id(entry.interrupt_id)
    if ids is None:
        raise _not_found(entry.interrupt_id)
    run_id, request_id = ids
    try:
        record = await runs.get(owner=principal, run_id=run_id)
    except AppError:  # malformed, unknown or someone else's run: all the same here
        raise _not_found(entry.interrupt_id) from None
    if record.session_id != agui.thread_id:
        raise _not_found(entry.interrupt_id)
    pending = record.pending_input is not None and record.pending_input.request_id == request_id
    return Target(run_id, request_id, entry, pending)


def answer_value(payload: Any) -> Any:
    """The answer in a resume payload: the value itself, or AG-UI's approval shape
    ``{"approved": bool}``, or ``{"value": ...}``."""
    if isinstance(payload, dict):
        for key in ("approved", "value"):
            if key in payload:
                return payload[key]
    return payload


async def apply(target: Target, *, principal: Principal, runs: RunService) -> None:
    """Answer (resolved) or cancel (cancelled) the waiting run, wherever it runs."""
    if not target.pending:
        return
    if target.entry.status == "cancelled":
        request = ControlRequest(
            run_id=target.run_id, principal_id=principal.id, action="cancel", reason="cancelled"
        )
    else:
        request = ControlRequest(
            run_id=target.run_id,
            principal_id=principal.id,
            action="input",
            request_id=target.request_id,
            value=answer_value(target.entry.payload),
        )
    try:
        await runs.control(request)
    except AppError as exc:
        if exc.code == "invalid_input":
            detail = f"The resume payload was refused: {exc.detail}"
            raise ResumeRefused("invalid_input", detail) from None
        raise _not_found(target.entry.interrupt_id) from None
