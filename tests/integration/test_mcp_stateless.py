"""MCP_STATELESS=true: no sessions, so any replica answers any request. Two apps on one Redis
stand for two replicas: a task created through one is read through the other. What needs a
session (elicitation) fails with a clear tool error. In-process (httpx over ASGI): a
stateless answer is complete when its request ends, so nothing here needs a socket."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import pytest
from mcp import types

from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.support.mcp_client import bearer, mcp_session, text_of
from tests.support.redis_server import RedisServer

URL = "http://test/mcp"


@pytest.fixture
async def replicas(
    make_settings: SettingsFactory, running_redis: RedisServer
) -> AsyncIterator[tuple[AppClient, AppClient]]:
    settings = make_settings(REDIS_URL=running_redis.url, MCP_STATELESS=True)
    async with app_client(settings) as first, app_client(settings) as second:
        yield first, second


async def test_any_replica_serves_a_stateless_client(
    replicas: tuple[AppClient, AppClient],
) -> None:
    first, second = replicas
    headers = bearer(await login(first))
    async with mcp_session(URL, headers=headers, http=first) as session:
        names = [tool.name for tool in (await session.list_tools()).tools]
        answered = await session.call_tool("chat", {"input": "stateless hello"})
        asking = await session.call_tool("approval", {"input": "needs a human"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            created = await session.experimental.call_tool_as_task("chat", {"input": "task"})
    assert {"chat", "approval", "assistant"} <= set(names)
    assert not answered.isError and "stateless hello" in text_of(answered)
    assert asking.isError and "MCP_STATELESS" in text_of(asking)

    async with mcp_session(URL, headers=headers, http=second) as session:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            result = await session.experimental.get_task_result(
                created.task.taskId, types.CallToolResult
            )
            status = await session.experimental.get_task(created.task.taskId)
    assert not result.isError and "task" in text_of(result)
    assert status.status == "completed"
