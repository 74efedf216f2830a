"""Python client for agent-service: ``Client`` (sync) and ``AsyncClient``.

from agent_service_client import Client
with Client("http://localhost:8000", username="admin", password="...") as client:
    print(client.invoke("chat", "Hello!").output)
"""

from agent_service_client.async_client import AsyncClient, AsyncRunStream
from agent_service_client.client import Client, RunStream
from agent_service_client.errors import AgentServiceError, ApiError, StreamError, TaskTimeout
from agent_service_client.models import Invocation, TaskResult
from agent_service_client.streams import Backoff

__all__ = [
    "AgentServiceError",
    "ApiError",
    "AsyncClient",
    "AsyncRunStream",
    "Backoff",
    "Client",
    "Invocation",
    "RunStream",
    "StreamError",
    "TaskResult",
    "TaskTimeout",
]
