"""A run's end is the one write whose loss costs a user something: the record would stay
``running`` and ``run.completed`` would never be sent. In-process against a real Redis, the
run store's first ``finish`` fails as a loaded Redis makes it fail: either the reply is lost
after Redis applied the write, or the write never got there. Either way the run ends
``completed``, its log ends once, and exactly one webhook is queued and delivered.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import TimeoutError as RedisTimeout

from tests.conftest import SettingsFactory, app_client
from tests.integration.test_tasks_api import admin as _admin
from tests.integration.test_webhooks_api import (
    _deliveries,
    _ended,
    _invoke,
    _settings,
    _subscribe,
    _verified,
)
from tests.support.a2a_webhooks import WebhookReceiver
from tests.support.sse import parse_lines


@pytest.mark.parametrize("applied", [True, False], ids=["reply-lost", "never-applied"])
async def test_one_failed_end_write_loses_neither_the_status_nor_the_webhook(
    request: pytest.FixtureRequest,
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    applied: bool,
) -> None:
    settings = _settings(request, make_settings, "redis")
    async with app_client(settings) as client, WebhookReceiver() as inbox:
        admin = await _admin(client)
        hook = await _subscribe(client, admin, inbox.url, ["run.completed"])
        store = client.services.runs.store
        real_finish = store.finish
        tries: list[str] = []

        async def first_fails(run_id: str, *args: Any, **kwargs: Any) -> bool:
            tries.append(run_id)
            if len(tries) > 1:
                return await real_finish(run_id, *args, **kwargs)
            if applied:  # Redis did it; the process never heard back, so told nobody
                observer, store.observer = store.observer, None
                try:
                    await real_finish(run_id, *args, **kwargs)
                finally:
                    store.observer = observer
            raise RedisTimeout("Timeout reading from 127.0.0.1")

        monkeypatch.setattr(store, "finish", first_fails)
        run_id = await _invoke(client, admin)

        run = (await client.get(f"/v1/runs/{run_id}", headers=admin)).json()
        assert run["status"] == "completed" and run["output"]
        async with client.stream("GET", f"/v1/runs/{run_id}/events", headers=admin) as events:
            frames = list(parse_lines(iter([line async for line in events.aiter_lines()])))
        ids = [int(frame.id) for frame in frames if frame.id]
        assert ids == sorted(set(ids))  # the retried append added nothing twice
        assert [f.event for f in frames].count("run_completed") == 1

        # Queued before the invoke answered: exactly one, whichever try wrote the end.
        assert len((await _deliveries(client, admin, hook["id"]))["items"]) == 1
        payload = _verified(hook["secret"], await inbox.next(timeout=15))
        assert payload["type"] == "run.completed" and payload["data"]["run_id"] == run_id
        [delivery] = await _ended(client, admin, hook["id"])
        assert delivery["status"] == "delivered"
        assert tries == [run_id, run_id]
