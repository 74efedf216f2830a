"""A non-streamed chat completion: the run followed to its end (or to its first question),
answered as one ``chat.completion`` object."""

from __future__ import annotations

import json
from typing import Any

from app.agents.events import ErrorEvent, InputRequired, RunCompleted
from app.agents.followers import EventsMissed
from app.agents.run import Run
from app.agents.service import RunService
from app.api.run_requests import run_error
from app.core.errors import AppError
from app.protocols.openai.chat_schemas import (
    AgentRun,
    AgentStep,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionMessage,
)
from app.protocols.openai.chat_stream import STEP_TYPES, input_required_body

Ending = RunCompleted | ErrorEvent | InputRequired
# OpenAI's SDKs retry 409 and 5xx answers by default, and each retry would be a new run: an
# error says whether that can help (the SDKs obey this header).
SHOULD_RETRY = "X-Should-Retry"


async def follow_to_end(run: Run, runs: RunService) -> tuple[Ending, list[dict[str, Any]]]:
    """The run's ending (or its first input request) and its tool steps so far."""
    steps: list[dict[str, Any]] = []
    batches = runs.follow_batches(run.run_id, after=0, started=run)
    try:
        async for batch in batches:
            for item in batch:
                if isinstance(item, EventsMissed):
                    continue
                if item.type in STEP_TYPES:
                    steps.append(json.loads(item.json))
                elif item.type in ("run_completed", "error", "input_required"):
                    event = item.event
                    assert isinstance(event, RunCompleted | ErrorEvent | InputRequired)  # noqa: S101
                    return event, steps
    finally:
        await batches.aclose()
    # The feed ended without a terminal event (cannot happen to a run this process started).
    return ErrorEvent(code="run_lost", message="The run ended without an answer."), steps


def completion_of(
    run: Run, completed: RunCompleted, steps: list[dict[str, Any]], *, model: str, created: int
) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{run.run_id}",
        created=created,
        model=model,
        choices=[ChatCompletionChoice(message=ChatCompletionMessage(content=completed.output))],
        usage=completed.usage,
        agent_run=AgentRun(
            id=run.run_id,
            session_id=run.session_id,
            steps=[AgentStep.model_validate(step) for step in steps],
        ),
    )


def failed(error: ErrorEvent, run_id: str) -> AppError:
    """The error invoke would answer for this run, with the run's id and whether a retry may
    help: OpenAI's SDKs retry 5xx by default, and each retry is a new run."""
    exc = run_error(error)
    exc.extensions["run_id"] = run_id
    exc.headers[SHOULD_RETRY] = "true" if error.retryable else "false"
    return exc


def input_required(asked: InputRequired, run: Run, prefix: str) -> AppError:
    """409 ``input_required``: the run waits for its answer on the native run routes."""
    body = input_required_body(asked, run_id=run.run_id, session_id=run.session_id, prefix=prefix)
    extensions = {key: body[key] for key in ("run_id", "session_id", "input_request")}
    return AppError(
        body["message"],
        status=409,
        code="input_required",
        headers={SHOULD_RETRY: "false", "X-Run-ID": run.run_id},
        extensions=extensions,
    )
