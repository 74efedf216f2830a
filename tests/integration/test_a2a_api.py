"""The A2A JSON-RPC surface in-process, on both store backends: method names of both protocol
generations, errors in JSON-RPC's shape (never a 500), ownership, and the push config rules.
Streams and webhooks are covered against a real server in tests/e2e/test_a2a.py."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import AppClient, SettingsFactory, app_client, login

V1 = {"A2A-Version": "1.0"}


def text_message(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "ROLE_USER", "messageId": "m-" + text[:8], "parts": [{"text": text}], **extra}


async def rpc(
    client: httpx.AsyncClient,
    method: str,
    params: dict[str, Any],
    *,
    token: str | None,
    agent: str = "chat",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {**V1, **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    return await client.post(f"/a2a/{agent}", json=body, headers=sent)


def error_code(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["error"]["code"])


async def send(client: httpx.AsyncClient, token: str, text: str, **extra: Any) -> dict[str, Any]:
    response = await rpc(
        client, "SendMessage", {"message": text_message(text, **extra)}, token=token
    )
    assert response.status_code == 200 and "result" in response.json(), response.text
    task: dict[str, Any] = response.json()["result"]["task"]
    return task


async def test_a_send_completes_a_task_in_a_new_context(any_client: AppClient) -> None:
    token = await login(any_client)
    task = await send(any_client, token, "Hello agent")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "Hello agent" in task["artifacts"][0]["parts"][0]["text"]
    # The A2A task is our task, its context our session.
    headers = {"Authorization": f"Bearer {token}"}
    native = (await any_client.get(f"/v1/tasks/{task['id']}", headers=headers)).json()
    assert native["status"] == "completed" and native["session_id"] == task["contextId"]
    assert task["metadata"]["links"]["task"] == f"http://test/v1/tasks/{task['id']}"


async def test_the_03_method_names_answer_without_a_version_header(any_client: AppClient) -> None:
    token = await login(any_client)
    body = {
        "jsonrpc": "2.0",
        "id": "old",
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "messageId": "m1",
                "kind": "message",
                "parts": [{"kind": "text", "text": "from a 0.3 client"}],
            }
        },
    }
    response = await any_client.post(
        "/a2a/chat", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    result = response.json()["result"]
    assert result["kind"] == "task" and result["status"]["state"] == "completed"
    got = await any_client.post(
        "/a2a/chat",
        json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": result["id"]}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert got.json()["result"]["id"] == result["id"]
    # The 1.0 names need the version header: without it the client speaks 0.3.
    unversioned = await rpc(
        any_client, "GetTask", {"id": result["id"]}, token=token, headers={"A2A-Version": ""}
    )
    assert error_code(unversioned) == -32009


async def test_bad_calls_are_json_rpc_errors(any_client: AppClient) -> None:
    token = await login(any_client)
    auth = {"Authorization": f"Bearer {token}", **V1}
    not_json = await any_client.post("/a2a/chat", content=b"\xff{", headers=auth)
    assert error_code(not_json) == -32700
    assert error_code(await rpc(any_client, "NoSuchMethod", {}, token=token)) == -32601
    assert error_code(await rpc(any_client, "SendMessage", {"message": 3}, token=token)) == -32602
    empty = await rpc(any_client, "SendMessage", {"message": {"role": "ROLE_USER"}}, token=token)
    assert error_code(empty) == -32602
    file_part = {"role": "ROLE_USER", "messageId": "f", "parts": [{"url": "https://x/y.png"}]}
    refused = await rpc(any_client, "SendMessage", {"message": file_part}, token=token)
    assert error_code(refused) == -32005
    unknown_context = text_message("hi", contextId="0" * 32)
    assert (
        error_code(await rpc(any_client, "SendMessage", {"message": unknown_context}, token=token))
        == -32602
    )
    assert error_code(await rpc(any_client, "GetTask", {"id": "0" * 32}, token=token)) == -32001
    assert error_code(await rpc(any_client, "GetTask", {"id": "../x"}, token=token)) == -32001
    assert error_code(await rpc(any_client, "GetExtendedAgentCard", {}, token=token)) == -32004


async def test_http_level_refusals_keep_their_status_in_json_rpc_shape(
    any_client: AppClient,
) -> None:
    anonymous = await rpc(any_client, "SendMessage", {"message": text_message("x")}, token=None)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    error = anonymous.json()["error"]
    assert anonymous.json()["jsonrpc"] == "2.0" and error["code"] == -32000
    assert error["data"][0]["metadata"]["code"] == "unauthorized"
    token = await login(any_client)
    missing = await rpc(
        any_client, "SendMessage", {"message": text_message("x")}, token=token, agent="nope"
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["data"][0]["metadata"]["code"] == "agent_not_found"


async def test_a_read_only_key_reads_but_cannot_send(any_client: AppClient) -> None:
    token = await login(any_client)
    task = await send(any_client, token, "made by the admin")
    created = await any_client.post(
        "/v1/auth/api-keys",
        json={"name": "reader", "scopes": ["tasks:read"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    key = created.json()["key"]
    headers = {"X-API-Key": key}
    refused = await rpc(
        any_client, "SendMessage", {"message": text_message("x")}, token=None, headers=headers
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["data"][0]["metadata"]["code"] == "insufficient_scope"
    # The key is a principal of its own: the admin's task is not its task.
    other = await rpc(any_client, "GetTask", {"id": task["id"]}, token=None, headers=headers)
    assert error_code(other) == -32001
    listed = await rpc(any_client, "ListTasks", {}, token=None, headers=headers)
    assert listed.json()["result"]["tasks"] == []


async def test_list_tasks_shows_this_agents_tasks_by_context(any_client: AppClient) -> None:
    token = await login(any_client)
    first = await send(any_client, token, "one")
    second = await send(any_client, token, "two", contextId=first["contextId"])
    response = await rpc(
        any_client,
        "SendMessage",
        {"message": text_message("other")},
        token=token,
        agent="assistant",
    )
    assert "result" in response.json()
    everything = (await rpc(any_client, "ListTasks", {}, token=token)).json()["result"]
    assert {t["id"] for t in everything["tasks"]} == {first["id"], second["id"]}
    one_context = await rpc(
        any_client, "ListTasks", {"contextId": first["contextId"], "pageSize": 1}, token=token
    )
    page = one_context.json()["result"]
    assert len(page["tasks"]) == 1 and page["nextPageToken"] == "1" and page["totalSize"] == 2
    bad_token = await rpc(any_client, "ListTasks", {"pageToken": "x"}, token=token)
    assert error_code(bad_token) == -32602


async def test_push_configs_refuse_private_addresses_by_default(any_client: AppClient) -> None:
    token = await login(any_client)
    task = await send(any_client, token, "notify")
    for url in (
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "ftp://example.com/x",
        "http://u:p@example.com/",
    ):
        params = {"taskId": task["id"], "url": url}
        response = await rpc(any_client, "CreateTaskPushNotificationConfig", params, token=token)
        assert error_code(response) == -32602, url
    listed = await rpc(
        any_client, "ListTaskPushNotificationConfigs", {"taskId": task["id"]}, token=token
    )
    assert listed.json()["result"].get("configs", []) == []
    # Refused before the task is made: a send with a refused config makes no task.
    config = {"url": "http://127.0.0.1:9/hook"}
    refused = await rpc(
        any_client,
        "SendMessage",
        {"message": text_message("nope"), "configuration": {"taskPushNotificationConfig": config}},
        token=token,
    )
    assert error_code(refused) == -32602
    tasks = (await rpc(any_client, "ListTasks", {}, token=token)).json()["result"]["tasks"]
    assert [t["id"] for t in tasks] == [task["id"]]


async def test_push_configs_are_the_task_owners(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(A2A_PUSH_ALLOW_PRIVATE_URLS=True)
    async with app_client(settings) as client:
        token = await login(client)
        task = await send(client, token, "mine")
        params = {
            "taskId": task["id"],
            "id": "hook-1",
            "url": "http://127.0.0.1:9/hook",
            "token": "t",
        }
        created = await rpc(client, "CreateTaskPushNotificationConfig", params, token=token)
        assert created.json()["result"]["id"] == "hook-1"
        got = await rpc(
            client,
            "GetTaskPushNotificationConfig",
            {"taskId": task["id"], "id": "hook-1"},
            token=token,
        )
        assert got.json()["result"]["url"] == "http://127.0.0.1:9/hook"
        key = (
            await client.post(
                "/v1/auth/api-keys",
                json={"name": "other", "scopes": ["tasks:read", "tasks:write"]},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()["key"]
        other = {"X-API-Key": key}
        for method, call in (
            ("GetTaskPushNotificationConfig", {"taskId": task["id"], "id": "hook-1"}),
            ("ListTaskPushNotificationConfigs", {"taskId": task["id"]}),
            ("DeleteTaskPushNotificationConfig", {"taskId": task["id"], "id": "hook-1"}),
            ("CreateTaskPushNotificationConfig", {**params, "id": "theirs"}),
            ("CancelTask", {"id": task["id"]}),
        ):
            response = await rpc(client, method, call, token=None, headers=other)
            assert error_code(response) == -32001, method
        still = await rpc(
            client,
            "GetTaskPushNotificationConfig",
            {"taskId": task["id"], "id": "hook-1"},
            token=token,
        )
        assert still.json()["result"]["id"] == "hook-1"
        deleted = await rpc(
            client,
            "DeleteTaskPushNotificationConfig",
            {"taskId": task["id"], "id": "hook-1"},
            token=token,
        )
        assert deleted.json()["result"] is None
        gone = await rpc(
            client,
            "GetTaskPushNotificationConfig",
            {"taskId": task["id"], "id": "hook-1"},
            token=token,
        )
        assert error_code(gone) == -32001


async def test_a_finished_task_is_not_cancelable_nor_answerable(any_client: AppClient) -> None:
    token = await login(any_client)
    task = await send(any_client, token, "done soon")
    cancel = await rpc(any_client, "CancelTask", {"id": task["id"]}, token=token)
    assert error_code(cancel) == -32002
    answer = text_message("more", taskId=task["id"])
    assert (
        error_code(await rpc(any_client, "SendMessage", {"message": answer}, token=token)) == -32004
    )
    subscribe = await rpc(any_client, "SubscribeToTask", {"id": task["id"]}, token=token)
    assert error_code(subscribe) == -32004


async def test_cards_name_the_public_url(make_settings: SettingsFactory) -> None:
    settings = make_settings(PUBLIC_URL="https://agents.example.com/", A2A_DEFAULT_AGENT="chat")
    async with app_client(settings) as client:
        card = (await client.get("/.well-known/agent-card.json")).json()
        assert card["name"] == "chat"
        assert card["supportedInterfaces"][0]["url"] == "https://agents.example.com/a2a/chat"
        assert card["url"] == "https://agents.example.com/a2a/chat"  # what 0.3 clients read
        token = await login(client)
        task = await send(client, token, "links")
        assert task["metadata"]["links"]["task"].startswith("https://agents.example.com/v1/tasks/")
        unknown = await client.get("/a2a/nope/.well-known/agent-card.json")
        assert unknown.status_code == 404
