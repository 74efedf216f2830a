"""a2a-sdk clients for tests: discovered from our agent cards, authenticated the way the card's
security schemes say (the SDK's AuthInterceptor), and the small helpers every A2A test uses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from a2a.client import (
    A2ACardResolver,
    AuthInterceptor,
    Client,
    ClientCallContext,
    ClientCallInterceptor,
    ClientConfig,
    ClientFactory,
    CredentialService,
)
from a2a.types import (
    AgentCard,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
)

# Our cards' scheme names (app/protocols/a2a/cards.py).
BEARER, API_KEY = "bearer", "apiKey"


class StaticCredentials(CredentialService):
    """One credential per security scheme name, for every call."""

    def __init__(self, credentials: dict[str, str]) -> None:
        self._credentials = credentials

    async def get_credentials(
        self, security_scheme_name: str, context: ClientCallContext | None
    ) -> str | None:
        return self._credentials.get(security_scheme_name)


async def fetch_card(base_url: str, agent: str) -> AgentCard:
    async with httpx.AsyncClient(timeout=10) as http:
        return await A2ACardResolver(http, f"{base_url}/a2a/{agent}").get_agent_card()


@asynccontextmanager
async def a2a_client(
    base_url: str,
    agent: str,
    *,
    credentials: dict[str, str] | None = None,
    streaming: bool = True,
) -> AsyncIterator[Client]:
    """A client for ``agent``, made from its card as a newcomer would."""
    card = await fetch_card(base_url, agent)
    async with httpx.AsyncClient(timeout=60) as http:
        config = ClientConfig(httpx_client=http, streaming=streaming)
        interceptors: list[ClientCallInterceptor] = [
            AuthInterceptor(StaticCredentials(credentials or {}))
        ]
        yield ClientFactory(config).create(card, interceptors=interceptors)


def user_message(text: str, *, task_id: str = "", context_id: str = "") -> Message:
    return Message(
        message_id=uuid.uuid4().hex,
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def send_request(
    message: Message,
    *,
    return_immediately: bool = False,
    configuration: SendMessageConfiguration | None = None,
) -> SendMessageRequest:
    config = configuration or SendMessageConfiguration()
    config.return_immediately = return_immediately
    return SendMessageRequest(message=message, configuration=config)


async def drop(stream: AsyncIterator[StreamResponse]) -> None:
    """Close a stream mid-way, as a client whose connection drops (the client's streams are
    async generators; the interface promises only an iterator)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [item async for item in stream]


def only_task(responses: list[StreamResponse]) -> Task:
    """The one Task a non-streaming send answers with."""
    assert len(responses) == 1 and responses[0].HasField("task"), responses
    return responses[0].task


def artifact_text(task: Task) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)
