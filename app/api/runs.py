"""Reach a live foreground run from any replica: answer its input request, or cancel it."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.agents.control_bus import ControlRequest
from app.api.deps import AgentsRunDep, RunServiceDep
from app.api.responses import INPUT_UNPROCESSABLE, LIVE_RUN_NOT_FOUND, problems
from app.api.schemas.agents import Accepted, RunInputBody

router = APIRouter(prefix="/runs", tags=["runs"])

ERRORS = problems(401, 403, docs={404: LIVE_RUN_NOT_FOUND})
INPUT_ERRORS = problems(401, 403, docs={404: LIVE_RUN_NOT_FOUND, 422: INPUT_UNPROCESSABLE})


@router.post(
    "/{run_id}/input",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=INPUT_ERRORS,
    summary="Answer a run's input_required request",
)
async def answer_input(
    run_id: str, body: RunInputBody, principal: AgentsRunDep, runs: RunServiceDep
) -> Accepted:
    """Answers the `input_required` event of a live run started with the stream route (its
    `X-Run-ID` header and the event's `request_id`). Works from any replica: the answer
    reaches the one holding the run. `confirm` takes true/false, `choice` one of the
    event's `choices`, `text` a string. 202 once the run has taken the answer; it then
    goes on in its own stream. Needs the `agents:run` scope and must come from the run's
    own caller: another caller's run is 404 `run_not_found`.
    """
    await runs.control(
        ControlRequest(
            run_id=run_id,
            principal_id=principal.id,
            action="input",
            request_id=body.request_id,
            value=body.value,
        )
    )
    return Accepted(run_id=run_id)


@router.post(
    "/{run_id}/cancel",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERRORS,
    summary="Cancel a live run",
)
async def cancel_run(run_id: str, principal: AgentsRunDep, runs: RunServiceDep) -> Accepted:
    """Cancels a live foreground run from any replica: its agent and upstream LLM call stop
    within a second, and its stream ends with an `error` event `cancelled`. A run that has
    already ended, or another caller's, is 404 `run_not_found`. Needs the `agents:run`
    scope. Background tasks are cancelled with DELETE /v1/tasks/{task_id}."""
    await runs.control(ControlRequest(run_id=run_id, principal_id=principal.id, action="cancel"))
    return Accepted(run_id=run_id)
