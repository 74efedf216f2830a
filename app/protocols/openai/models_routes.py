"""GET /v1/models and /v1/models/{model}: the agents, as OpenAI's model list."""

from __future__ import annotations

import time

from fastapi import APIRouter

from app.agents.errors import AgentNotFound
from app.agents.protocol import Agent
from app.api.deps import PrincipalDep, RunServiceDep
from app.protocols.openai.chat_schemas import OpenAIModel, OpenAIModelList
from app.protocols.openai.errors import model_not_found
from app.protocols.openai.openapi import openai_errors

router = APIRouter(tags=["openai"])

# OpenAI's `created` is when a model was published; an agent's is when this process loaded it.
_STARTED = int(time.time())


def _model(agent: Agent) -> OpenAIModel:
    return OpenAIModel(id=agent.name, created=_STARTED, description=agent.description)


@router.get(
    "/models",
    response_model=OpenAIModelList,
    responses=openai_errors(401),
    summary="List the agents as OpenAI models",
)
async def list_models(_principal: PrincipalDep, runs: RunServiceDep) -> OpenAIModelList:
    """Every agent as an OpenAI model (`id` is the agent's name: the `model` of a chat
    completion), for OpenAI clients' `client.models.list()`. Any authenticated caller; errors
    in OpenAI's shape. The native list with input schemas and capabilities: GET /v1/agents."""
    return OpenAIModelList(data=[_model(agent) for agent in runs.agents.all()])


@router.get(
    "/models/{model}",
    response_model=OpenAIModel,
    responses=openai_errors(401, 404),
    summary="Describe one agent as an OpenAI model",
)
async def get_model(model: str, _principal: PrincipalDep, runs: RunServiceDep) -> OpenAIModel:
    """One agent as an OpenAI model (`client.models.retrieve(name)`). Any authenticated
    caller; 404 `model_not_found` (type `invalid_request_error`) for a name no agent has."""
    try:
        return _model(runs.agents.require(model))
    except AgentNotFound:
        raise model_not_found(model) from None
