"""A2A end to end: a2a-sdk's own client against a real server process on a real Redis.

The client discovers each agent from its card and authenticates the way the card's security
schemes say (the SDK's AuthInterceptor). The offline model is paced (40 tokens at 25/s, about
1.6 s an answer) so a run can be cancelled, or its stream dropped and resumed, while it runs.
Push notifications go to a real HTTP server the test runs on loopback.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from a2a.client import A2AClientError
from a2a.types import (
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    SendMessageConfiguration,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError

from app.protocols.a2a.proto_json import to_dict
from tests.e2e.conftest import login
from tests.support.a2a_clients import (
    API_KEY,
    BEARER,
    a2a_client,
    artifact_text,
    collect,
    drop,
    fetch_card,
    only_task,
    send_request,
    user_message,
)
from tests.support.a2a_webhooks import WebhookReceiver
from tests.support.redis_server import RedisServer
from tests.support.server_process import PROTOCOLS_ON, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("a2a")]

ENV = {
    **PROTOCOLS_ON,
    "OFFLINE_TOKENS_PER_SECOND": "25",
    "OFFLINE_RESPONSE_TOKENS": "40",
    "A2A_PUSH_ALLOW_PRIVATE_URLS": "true",  # the receiver is on loopback
}
S = TaskState


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[ServerProcess]:
    redis_server.start()
    env = {**ENV, "REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"a2a-{uuid.uuid4().hex[:8]}:"}
    with ServerProcess(env=env) as process:
        yield process


@pytest.fixture(scope="module")
def token(server: ServerProcess) -> str:
    return login(server.url)


def creds(token: str) -> dict[str, str]:
    return {BEARER: token}


async def test_cards_are_discovered_without_credentials(server: ServerProcess) -> None:
    card = await fetch_card(server.url, "approval")
    assert card.name == "approval"
    interfaces = [(i.url, i.protocol_version) for i in card.supported_interfaces]
    assert interfaces == [
        (f"{server.url}/a2a/approval", "1.0"),
        (f"{server.url}/a2a/approval", "0.3"),
    ]
    assert card.capabilities.streaming and card.capabilities.push_notifications
    assert card.skills[0].id == "approval" and "human-input" in card.skills[0].tags
    assert card.security_schemes[BEARER].http_auth_security_scheme.scheme == "Bearer"
    assert card.security_schemes[API_KEY].api_key_security_scheme.name == "X-API-Key"
    index = httpx.get(f"{server.url}/a2a", timeout=10).json()
    assert {item["name"] for item in index["items"]} == {"approval", "assistant", "chat"}
    root = httpx.get(f"{server.url}/.well-known/agent-card.json", timeout=10)
    assert root.status_code == 200 and root.json()["name"] in {"approval", "assistant", "chat"}


async def test_send_waits_for_the_answer_and_the_context_keeps_history(
    server: ServerProcess, token: str
) -> None:
    async with a2a_client(server.url, "chat", credentials=creds(token), streaming=False) as client:
        first = only_task(await collect(client.send_message(send_request(user_message("Hi A2A")))))
        assert first.status.state == S.TASK_STATE_COMPLETED
        assert "Hi A2A" in artifact_text(first)
        context = first.context_id
        again = user_message("Second turn", context_id=context)
        second = only_task(await collect(client.send_message(send_request(again))))
    assert second.status.state == S.TASK_STATE_COMPLETED and second.context_id == context
    # The context is our session: both exchanges are its history, readable natively.
    messages = httpx.get(
        f"{server.url}/v1/sessions/{context}/messages",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Hi A2A", "Second turn"]


async def test_stream_sends_task_then_working_chunks_and_the_final_artifact(
    server: ServerProcess, token: str
) -> None:
    async with a2a_client(server.url, "chat", credentials=creds(token)) as client:
        responses = await collect(client.send_message(send_request(user_message("Stream me"))))
        task_id = responses[0].task.id
        fetched = await client.get_task(GetTaskRequest(id=task_id))
    assert responses[0].HasField("task")
    states = [r.status_update.status.state for r in responses if r.HasField("status_update")]
    assert states == [S.TASK_STATE_WORKING, S.TASK_STATE_COMPLETED]
    updates = [r.artifact_update for r in responses if r.HasField("artifact_update")]
    chunks, final = updates[:-1], updates[-1]
    assert len(chunks) > 5 and all(u.append for u in chunks[1:])
    assert final.last_chunk and not final.append
    assert "".join(u.artifact.parts[0].text for u in chunks) == final.artifact.parts[0].text
    assert artifact_text(fetched) == final.artifact.parts[0].text
    assert fetched.status.state == S.TASK_STATE_COMPLETED


async def test_a_question_is_input_required_and_the_next_message_answers_it(
    server: ServerProcess, token: str
) -> None:
    async with a2a_client(server.url, "approval", credentials=creds(token)) as client:
        first = await collect(client.send_message(send_request(user_message("Refund order 42"))))
        task = first[0].task
        asked = first[-1].status_update.status
        assert asked.state == S.TASK_STATE_INPUT_REQUIRED
        how = to_dict(asked.message.parts[1].data)["input_required"]
        assert how["choices"] == ["low", "normal", "high"]
        # The answer is the next message of the same task (and context).
        second = await collect(
            client.send_message(
                send_request(user_message("high", task_id=task.id, context_id=task.context_id))
            )
        )
        confirm = second[-1].status_update.status
        assert confirm.state == S.TASK_STATE_INPUT_REQUIRED
        assert "Approve this action at high priority" in confirm.message.parts[0].text
        third = await collect(
            client.send_message(send_request(user_message("yes", task_id=task.id)))
        )
    assert third[-1].status_update.status.state == S.TASK_STATE_COMPLETED
    final = [r.artifact_update for r in third if r.HasField("artifact_update")][-1]
    assert final.artifact.parts[0].text.startswith("Approved at high priority.")


async def test_cancel_stops_a_working_task(server: ServerProcess, token: str) -> None:
    async with a2a_client(server.url, "chat", credentials=creds(token)) as client:
        stream = client.send_message(send_request(user_message("A long answer please")))
        task_id = ""
        async for response in stream:
            if response.HasField("task"):
                task_id = response.task.id
            if response.HasField("artifact_update"):
                break  # it is producing output: cancel it mid-run
        await drop(stream)
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == S.TASK_STATE_CANCELED
        assert (await client.get_task(GetTaskRequest(id=task_id))).status.state == (
            S.TASK_STATE_CANCELED
        )
        with pytest.raises(TaskNotCancelableError, match="already cancelled"):
            await client.cancel_task(CancelTaskRequest(id=task_id))


async def test_a_dropped_stream_resumes_with_subscribe(server: ServerProcess, token: str) -> None:
    async with a2a_client(server.url, "chat", credentials=creds(token)) as client:
        stream = client.send_message(send_request(user_message("Resume me")))
        seen: list[str] = []
        task_id = ""
        async for response in stream:
            if response.HasField("task"):
                task_id = response.task.id
            if response.HasField("artifact_update"):
                seen.append(response.artifact_update.artifact.parts[0].text)
                if len(seen) == 3:
                    break  # the connection drops
        await drop(stream)
        resumed = await collect(client.subscribe(SubscribeToTaskRequest(id=task_id)))
    snapshot = resumed[0].task
    assert snapshot.id == task_id and snapshot.status.state == S.TASK_STATE_WORKING
    so_far = artifact_text(snapshot)
    assert so_far.startswith("".join(seen))  # nothing produced while away is lost
    later = [r.artifact_update for r in resumed if r.HasField("artifact_update")]
    final = later[-1].artifact.parts[0].text
    assert final == so_far + "".join(u.artifact.parts[0].text for u in later[:-1])
    assert resumed[-1].status_update.status.state == S.TASK_STATE_COMPLETED


async def test_push_notifications_reach_the_webhook_with_its_token_and_auth(
    server: ServerProcess, token: str
) -> None:
    async with (
        WebhookReceiver() as receiver,
        a2a_client(server.url, "chat", credentials=creds(token), streaming=False) as client,
    ):
        config = TaskPushNotificationConfig(
            url=receiver.url,
            token="per-task-token",
            authentication=AuthenticationInfo(scheme="Bearer", credentials="receiver-secret"),
        )
        request = send_request(
            user_message("Notify me"),
            return_immediately=True,
            configuration=SendMessageConfiguration(task_push_notification_config=config),
        )
        task = only_task(await collect(client.send_message(request)))
        received = [await receiver.next()]
        while (
            "statusUpdate" not in received[-1].json()
            or received[-1].json()["statusUpdate"]["status"]["state"] != "TASK_STATE_COMPLETED"
        ):
            received.append(await receiver.next())
        # The config is readable, listable and deletable by its owner.
        stored = await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task.id, id=task.id)
        )
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        await client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=task.id)
        )
        after = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
    for hook in received:
        assert hook.headers["x-a2a-notification-token"] == "per-task-token"
        assert hook.headers["authorization"] == "Bearer receiver-secret"
        assert hook.headers["content-type"] == "application/a2a+json"
    bodies = [hook.json() for hook in received]
    states = [b["statusUpdate"]["status"]["state"] for b in bodies if "statusUpdate" in b]
    assert states == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    artifact = next(b["artifactUpdate"] for b in bodies if "artifactUpdate" in b)
    assert artifact["taskId"] == task.id and "Notify me" in artifact["artifact"]["parts"][0]["text"]
    assert stored.url == receiver.url and stored.token == "per-task-token"
    assert [c.id for c in listed.configs] == [task.id] and list(after.configs) == []


async def test_unauthorised_clients_are_refused(server: ServerProcess, token: str) -> None:
    async with a2a_client(server.url, "chat") as anonymous:
        with pytest.raises(A2AClientError, match="401"):
            await collect(anonymous.send_message(send_request(user_message("hello"))))
    # A key that may read tasks but not submit them.
    key = httpx.post(
        f"{server.url}/v1/auth/api-keys",
        json={"name": "a2a-reader", "scopes": ["tasks:read"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["key"]
    async with a2a_client(server.url, "chat", credentials={API_KEY: key}) as reader:
        with pytest.raises(A2AClientError, match="403"):
            await collect(reader.send_message(send_request(user_message("hello"))))
        # Someone else's task is, to this key, no task at all.
        async with a2a_client(
            server.url, "chat", credentials=creds(token), streaming=False
        ) as owner:
            mine = only_task(await collect(owner.send_message(send_request(user_message("mine")))))
        with pytest.raises(TaskNotFoundError):
            await reader.get_task(GetTaskRequest(id=mine.id))
