"""Webhook subscriptions (/v1/webhooks) and their deliveries, in-process against the memory
stores and a real Redis (single, and a 3-primary cluster where the store's layout is the
subject), with a real HTTP receiver on loopback that checks every signature with the
`standardwebhooks` package, as a client would.

The app's embedded worker (WORKER_ENABLED, the default) runs the dispatcher; backoff and
polling are shortened so retries take milliseconds. Loopback is reached through the
WEBHOOK_ALLOWED_NETWORKS allow-list, which is also what the SSRF refusals are tested against.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from app.core.config import Settings
from tests.conftest import (
    REDIS_TOPOLOGIES,
    AppClient,
    SettingsFactory,
    app_client,
    redis_url_for,
)
from tests.integration.test_auth_api import assert_problem
from tests.integration.test_tasks_api import admin as _admin
from tests.integration.test_tasks_api import api_key as _key
from tests.support.a2a_webhooks import Received, WebhookReceiver

Auth = dict[str, str]
FAST = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_BACKOFF_SECONDS": 0.05,
    "WEBHOOK_MAX_BACKOFF_SECONDS": 0.2,
    "WEBHOOK_POLL_SECONDS": 0.05,
    "WEBHOOK_TIMEOUT_SECONDS": 5.0,
    "RATE_LIMIT_ENABLED": False,
    # A task left waiting for input must not hold up app shutdown for the default 20 s grace.
    "WORKER_SHUTDOWN_GRACE_SECONDS": 0.2,
}
ALL_EVENTS = ["run.completed", "run.failed", "run.input_required", "task.completed"]


def _settings(
    request: pytest.FixtureRequest,
    make_settings: SettingsFactory,
    topology: str,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {**FAST, **overrides}
    if topology != "memory":
        values["REDIS_URL"] = redis_url_for(request, topology)
    return make_settings(**values)


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
async def any_client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> AsyncIterator[AppClient]:
    async with app_client(_settings(request, make_settings, request.param)) as http:
        yield http


@pytest.fixture(params=["memory", "redis"])
async def client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> AsyncIterator[AppClient]:
    async with app_client(_settings(request, make_settings, request.param)) as http:
        yield http


async def _subscribe(
    client: httpx.AsyncClient, auth: Auth, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks", json={"url": url, "events": events or ALL_EVENTS}, headers=auth
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _invoke(client: httpx.AsyncClient, auth: Auth, agent: str = "chat") -> str:
    text = f"Tell me about webhooks {uuid.uuid4().hex[:8]}"
    response = await client.post(f"/v1/agents/{agent}/invoke", json={"input": text}, headers=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def _verified(secret: str, got: Received) -> Any:
    """The payload, after the receiver's own check (raises on a bad signature)."""
    return StandardWebhook(secret).verify(got.body, got.headers)


async def _until(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _deliveries(
    client: httpx.AsyncClient, auth: Auth, hook_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"/v1/webhooks/{hook_id}/deliveries", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ended(client: httpx.AsyncClient, auth: Auth, hook_id: str, count: int = 1) -> Any:
    async def ended() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await _deliveries(client, auth, hook_id))["items"]
        done = [d for d in items if d["status"] != "pending"]
        return items if len(done) >= count else None

    return await _until(ended, what="deliveries to end")


# --- subscriptions ----------------------------------------------------------------------------


async def test_a_subscription_is_made_shown_once_with_its_secret_listed_and_deleted(
    any_client: AppClient,
) -> None:
    admin = await _admin(any_client)
    created = await any_client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["run.completed"], "description": "ci"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 30
    assert created.headers["location"] == f"/v1/webhooks/{hook['id']}"
    listed = (await any_client.get("/v1/webhooks", headers=admin)).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]  # shown once
    got = (await any_client.get(f"/v1/webhooks/{hook['id']}", headers=admin)).json()
    assert got == {k: v for k, v in hook.items() if k != "secret"}
    deleted = await any_client.delete(f"/v1/webhooks/{hook['id']}", headers=admin)
    assert deleted.status_code == 204
    gone = await any_client.get(f"/v1/webhooks/{hook['id']}", headers=admin)
    assert_problem(gone, 404, "webhook_not_found")
    assert (await any_client.get("/v1/webhooks", headers=admin)).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://127.0.0.1:9/x"}, "validation_error"),  # no events
        ({"url": "http://127.0.0.1:9/x", "events": []}, "validation_error"),
        ({"url": "http://127.0.0.1:9/x", "events": ["run.started"]}, "validation_error"),
        ({"url": "ftp://example.com/x", "events": ["run.completed"]}, "webhook_url_refused"),
        ({"url": "http://u:p@127.0.0.1/x", "events": ["run.completed"]}, "webhook_url_refused"),
        ({"url": " http://127.0.0.1/x", "events": ["run.completed"]}, "validation_error"),
        ({"url": "http://10.1.2.3/x", "events": ["run.completed"]}, "webhook_url_refused"),
        ({"url": "http://169.254.169.254/x", "events": ["task.failed"]}, "webhook_url_refused"),
        ({"url": "http://[::1]/x", "events": ["run.failed"]}, "webhook_url_refused"),
        ({"url": "http://localhost./x", "events": ["run.failed"]}, "webhook_url_refused"),
    ],
)
async def test_bad_subscriptions_are_refused_with_a_problem_and_nothing_is_stored(
    client: AppClient, body: dict[str, Any], code: str
) -> None:
    admin = await _admin(client)
    answer = await client.post("/v1/webhooks", json=body, headers=admin)
    assert_problem(answer, 422, code)
    assert (await client.get("/v1/webhooks", headers=admin)).json()["items"] == []


async def test_private_addresses_are_refused_without_the_allow_list(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(RATE_LIMIT_ENABLED=False)  # no WEBHOOK_ALLOWED_NETWORKS
    async with app_client(settings) as client:
        admin = await _admin(client)
        for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://192.168.0.7/x"):
            answer = await client.post(
                "/v1/webhooks", json={"url": url, "events": ["run.completed"]}, headers=admin
            )
            problem = assert_problem(answer, 422, "webhook_url_refused")
            assert "non-public" in problem["detail"]


async def test_the_webhooks_scope_is_needed_and_the_cap_holds(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(**FAST, WEBHOOK_MAX_SUBSCRIPTIONS_PER_PRINCIPAL=2)
    async with app_client(settings) as client:
        admin = await _admin(client)
        runner = await _key(client, admin, "agents:run", "tasks:read")
        assert_problem(await client.get("/v1/webhooks", headers=runner), 403, "insufficient_scope")
        for _ in range(2):
            await _subscribe(client, admin, "http://127.0.0.1:9/x")
        third = await client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/x", "events": ALL_EVENTS},
            headers=admin,
        )
        assert_problem(third, 409, "too_many_webhooks")


async def test_no_principal_can_reach_another_ones_subscription_or_hear_its_runs(
    client: AppClient,
) -> None:
    admin = await _admin(client)
    ann = await _key(client, admin, "agents:run", "webhooks")
    bob = await _key(client, admin, "agents:run", "webhooks")
    async with WebhookReceiver() as ann_inbox, WebhookReceiver() as bob_inbox:
        ann_hook = await _subscribe(client, ann, ann_inbox.url, ["run.completed"])
        bob_hook = await _subscribe(client, bob, bob_inbox.url, ["run.completed"])
        run_id = await _invoke(client, ann)
        got = await ann_inbox.next(timeout=15)
        assert _verified(ann_hook["secret"], got)["data"]["run_id"] == run_id
        # Bob hears nothing of Ann's run, and reaches none of her subscription's routes.
        await _ended(client, ann, ann_hook["id"])
        assert bob_inbox.attempts == []
        assert (await _deliveries(client, bob, bob_hook["id"]))["total"] == 0
        message = (await _deliveries(client, ann, ann_hook["id"]))["items"][0]["id"]
        base = f"/v1/webhooks/{ann_hook['id']}"
        for method, path in (
            ("GET", base),
            ("DELETE", base),
            ("GET", f"{base}/deliveries"),
            ("POST", f"{base}/deliveries/{message}/retry"),
        ):
            answer = await client.request(method, path, headers=bob)
            assert_problem(answer, 404, "webhook_not_found")
        listed = (await client.get("/v1/webhooks", headers=bob)).json()["items"]
        assert [h["id"] for h in listed] == [bob_hook["id"]]
        assert (await client.get(base, headers=ann)).status_code == 200  # still there


# --- deliveries -------------------------------------------------------------------------------


async def test_a_run_end_is_delivered_signed_with_the_run_as_data(any_client: AppClient) -> None:
    admin = await _admin(any_client)
    async with WebhookReceiver() as inbox:
        hook = await _subscribe(any_client, admin, inbox.url, ["run.completed"])
        run_id = await _invoke(any_client, admin)
        got = await inbox.next(timeout=15)
    payload = _verified(hook["secret"], got)
    assert payload["type"] == "run.completed"
    run = (await any_client.get(f"/v1/runs/{run_id}", headers=admin)).json()
    assert payload["data"]["run_id"] == run_id and payload["data"]["status"] == "completed"
    assert payload["data"]["output"] == run["output"]
    assert got.headers["webhook-id"].startswith("msg_")
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.headers["content-type"] == "application/json"
    with pytest.raises(Exception, match="signature"):  # another secret does not verify
        StandardWebhook("whsec_" + "QUJD" * 8).verify(got.body, got.headers)
    [delivery] = await _ended(any_client, admin, hook["id"])
    assert delivery["id"] == got.headers["webhook-id"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["payload"] == payload and delivery["last_status"] == 200


async def test_a_tasks_end_is_task_completed_not_also_run_completed(client: AppClient) -> None:
    admin = await _admin(client)
    async with WebhookReceiver() as inbox:
        hook = await _subscribe(client, admin, inbox.url, ["run.completed", "task.completed"])
        submitted = await client.post(
            "/v1/tasks", json={"agent": "chat", "input": "summarise webhooks"}, headers=admin
        )
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["task_id"]
        got = await inbox.next(timeout=20)
        payload = _verified(hook["secret"], got)
        assert payload["type"] == "task.completed"
        assert payload["data"]["run_id"] == task_id and payload["data"]["kind"] == "task"
        # Another run's end comes after; the task made exactly one delivery.
        await _invoke(client, admin)
        second = _verified(hook["secret"], await inbox.next(timeout=15))
        assert second["type"] == "run.completed"
    events = [d["event"] for d in (await _deliveries(client, admin, hook["id"]))["items"]]
    assert sorted(events) == ["run.completed", "task.completed"]


async def test_a_question_is_input_required_for_a_task_and_for_a_streamed_run(
    client: AppClient,
) -> None:
    admin = await _admin(client)
    events = ["run.input_required", "task.input_required"]
    async with WebhookReceiver() as inbox:
        hook = await _subscribe(client, admin, inbox.url, events)
        submitted = await client.post(
            "/v1/tasks", json={"agent": "approval", "input": "restart the cache"}, headers=admin
        )
        assert submitted.status_code == 202, submitted.text
        payload = _verified(hook["secret"], await inbox.next(timeout=20))
        assert payload["type"] == "task.input_required"
        assert payload["data"]["run_id"] == submitted.json()["task_id"]
        assert payload["data"]["pending_input"]["kind"] == "choice"

        async def stream() -> None:
            async with client.stream(
                "POST", "/v1/agents/approval/stream", json={"input": "flush"}, headers=admin
            ) as response:
                async for _ in response.aiter_lines():
                    pass

        streaming = asyncio.create_task(stream())
        try:
            payload = _verified(hook["secret"], await inbox.next(timeout=20))
        finally:
            streaming.cancel()
            await asyncio.gather(streaming, return_exceptions=True)
    assert payload["type"] == "run.input_required" and payload["data"]["kind"] == "run"


async def test_a_receiver_failing_twice_then_accepting_gets_exactly_one_accepted_delivery(
    any_client: AppClient,
) -> None:
    admin = await _admin(any_client)
    async with WebhookReceiver(statuses=[500, 503]) as inbox:
        hook = await _subscribe(any_client, admin, inbox.url, ["run.completed"])
        await _invoke(any_client, admin)
        accepted = await inbox.next(timeout=15)
        [delivery] = await _ended(any_client, admin, hook["id"])
        assert inbox.received.empty()  # nothing accepted twice
    statuses = [status for status, _ in inbox.attempts]
    assert statuses == [500, 503, 200]
    ids = {got.headers["webhook-id"] for _, got in inbox.attempts}
    assert ids == {accepted.headers["webhook-id"]}  # one message, every attempt
    for _, got in inbox.attempts:
        _verified(hook["secret"], got)  # each attempt signed (its own timestamp)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [a["status"] for a in delivery["attempts_log"]] == [500, 503, 200]


async def test_past_the_horizon_a_delivery_is_a_dead_letter_and_can_be_retried(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    # Redis: the store a worker fleet shares.
    settings = _settings(request, make_settings, "redis", WEBHOOK_RETRY_HORIZON_SECONDS=1)
    async with app_client(settings) as client, WebhookReceiver(statuses=[500] * 200) as inbox:
        admin = await _admin(client)
        hook = await _subscribe(client, admin, inbox.url, ["run.completed"])
        await _invoke(client, admin)
        [dead] = await _ended(client, admin, hook["id"])
        assert dead["status"] == "failed" and dead["last_error"] == "http_500"
        assert dead["attempts"] >= 2 and dead["next_attempt_at"] is None
        letters = await _deliveries(client, admin, hook["id"], status="failed")
        assert [d["id"] for d in letters["items"]] == [dead["id"]]
        tried = len(inbox.attempts)
        await asyncio.sleep(0.5)  # the dispatcher polls every 0.05 s: it tries no more
        assert len(inbox.attempts) == tried
        inbox._statuses.clear()  # the receiver is fixed
        retried = await client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/{dead['id']}/retry", headers=admin
        )
        assert retried.status_code == 202 and retried.json()["status"] == "pending"
        got = await inbox.next(timeout=15)
        assert got.headers["webhook-id"] == dead["id"]
        assert _verified(hook["secret"], got)["data"] == dead["payload"]["data"]
        [delivered] = await _ended(client, admin, hook["id"])
        assert delivered["status"] == "delivered"
        assert (await _deliveries(client, admin, hook["id"], status="failed"))["total"] == 0
        unknown = await client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/msg_{'0' * 32}/retry", headers=admin
        )
        assert_problem(unknown, 404, "webhook_delivery_not_found")


async def test_a_refusing_receiver_is_not_retried(client: AppClient) -> None:
    admin = await _admin(client)
    async with WebhookReceiver(statuses=[410]) as inbox:
        hook = await _subscribe(client, admin, inbox.url, ["run.completed"])
        await _invoke(client, admin)
        [dead] = await _ended(client, admin, hook["id"])
        await asyncio.sleep(0.3)
    assert [status for status, _ in inbox.attempts] == [410]
    assert dead["status"] == "failed" and dead["last_error"] == "http_410"


async def test_an_address_refused_at_delivery_time_is_never_called(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    """Made while the allow-list let loopback in; delivered by a process whose allow-list no
    longer does: the delivery is refused before any connection and dead-lettered."""
    async with WebhookReceiver() as inbox:
        async with app_client(_settings(request, make_settings, "redis")) as client:
            admin = await _admin(client)
            hook = await _subscribe(client, admin, inbox.url, ["run.completed"])
        strict = _settings(request, make_settings, "redis", WEBHOOK_ALLOWED_NETWORKS="")
        async with app_client(strict) as client:
            admin = await _admin(client)
            await _invoke(client, admin)
            [dead] = await _ended(client, admin, hook["id"])
    assert dead["status"] == "failed" and dead["last_error"] == "refused_url"
    assert dead["attempts"] == 1 and dead["last_status"] is None
    assert inbox.attempts == []


async def test_a_deleted_subscription_stops_its_queued_deliveries(client: AppClient) -> None:
    admin = await _admin(client)
    async with WebhookReceiver(statuses=[500] * 200) as inbox:
        hook = await _subscribe(client, admin, inbox.url, ["run.completed"])
        await _invoke(client, admin)
        await _until(lambda: asyncio.sleep(0, result=len(inbox.attempts) >= 2), what="retries")
        assert (await client.delete(f"/v1/webhooks/{hook['id']}", headers=admin)).status_code == 204
        await asyncio.sleep(0.4)  # a retry in flight may land; then none
        tried = len(inbox.attempts)
        await asyncio.sleep(0.5)
        assert len(inbox.attempts) == tried
