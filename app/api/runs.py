"""Reach a live foreground run from any replica: answer its input request, or cancel it."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.agents.control_bus import ControlRequest
from app.api.deps import AgentsRunDep, RunServiceDep
from app.api.responses import problems
from app.api.schemas.agents import Accepted, RunInputBody

router = APIRouter(prefix="/runs", tags=["runs"])

ERRORS = problems(401, 403, 404, 422)


@router.post(
    "/{run_id}/input",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERRORS,
    summary="Answer a run's input_required request",
)
async def answer_input(
    run_id: str, body: RunInputBody, principal: AgentsRunDep, runs: RunServiceDep
) -> Accepted:
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
    summary="Cancel a live run (its agent and upstream LLM call stop within a second)",
)
async def cancel_run(run_id: str, principal: AgentsRunDep, runs: RunServiceDep) -> Accepted:
    await runs.control(ControlRequest(run_id=run_id, principal_id=principal.id, action="cancel"))
    return Accepted(run_id=run_id)
