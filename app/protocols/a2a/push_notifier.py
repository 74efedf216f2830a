"""Push notifications: each A2A task with webhook configs gets one follower, in one process,
that reads the task's events from the run log and POSTs every change of state (working,
input-required, the final one, with the output artifact before it) to every config the task
has at that moment, as A2A's StreamResponse JSON.

The run never waits for a webhook: the follower reads the durable log at its own pace, and
delivery (retries, backoff, timeouts, no redirects, the URL check) is
app/tasks/webhook_delivery.py. Events go out in order, one at a time per task; configs of one
event are served together. Across replicas a lease (push_store.py) keeps one follower per
task; a follower that dies stops notifications until an A2A request touches the task again
(a message, a read, a subscription or a config), which starts one anew from that point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import structlog
from a2a.types import TaskPushNotificationConfig
from a2a.utils.proto_utils import to_stream_response

from app.agents.service import RunService
from app.core.lifecycle import raise_if_cancelling
from app.protocols.a2a.proto_json import to_dict
from app.protocols.a2a.push_store import LEASE_SECONDS, PushConfigStore
from app.protocols.a2a.task_events import TaskEvents, Update
from app.protocols.a2a.task_view import TaskLinks
from app.store.run_records import RunRecord
from app.tasks.webhook_delivery import Webhook, WebhookDelivery

log = structlog.get_logger(__name__)

A2A_MEDIA_TYPE = "application/a2a+json"
TOKEN_HEADER = "X-A2A-Notification-Token"  # noqa: S105 - a header name


def webhook_headers(config: TaskPushNotificationConfig) -> dict[str, str]:
    """The A2A spec's: the config's token, and its credentials under its scheme."""
    headers = {"Content-Type": A2A_MEDIA_TYPE}
    if config.token:
        headers[TOKEN_HEADER] = config.token
    if config.HasField("authentication") and config.authentication.credentials:
        scheme = config.authentication.scheme or "Bearer"
        headers["Authorization"] = f"{scheme} {config.authentication.credentials}"
    return headers


class PushNotifier:
    def __init__(
        self,
        *,
        store: PushConfigStore,
        runs: RunService,
        delivery: WebhookDelivery,
        holder: str,
    ) -> None:
        self._store = store
        self._runs = runs
        self._delivery = delivery
        self._holder = holder  # this process, in the lease
        self._following: dict[str, asyncio.Task[None]] = {}

    def ensure(self, record: RunRecord, links: TaskLinks, *, after: int) -> None:
        """Follow the task (unless this process already does, or it has ended), notifying of
        what happens after event ``after``."""
        if record.finished or record.id in self._following:
            return
        task = asyncio.create_task(self._follow(record, links, after), name=f"a2a-push-{record.id}")
        self._following[record.id] = task
        task.add_done_callback(lambda _: self._following.pop(record.id, None))

    async def _follow(self, record: RunRecord, links: TaskLinks, after: int) -> None:
        task_id = record.id
        try:
            if not await self._store.take_lease(task_id, self._holder):
                return  # another replica delivers this task's notifications
        except Exception as exc:
            raise_if_cancelling()
            log.warning("a2a_push_lease_failed", task_id=task_id, error=type(exc).__name__)
            return
        renew = asyncio.create_task(self._renew(task_id), name=f"a2a-push-lease-{task_id}")
        events = TaskEvents(record, links, chunks=False)
        try:
            async for item in self._runs.follow(task_id, after=0):
                updates = events.feed(item)
                if events.last_seq <= after:
                    continue  # before the config existed: read to know the state, not sent
                for update in updates:
                    await self._notify(task_id, update)
                if events.finished:
                    break
        except Exception as exc:
            raise_if_cancelling()
            log.warning("a2a_push_follow_failed", task_id=task_id, error=type(exc).__name__)
        finally:
            renew.cancel()
            with contextlib.suppress(BaseException):
                await renew
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.drop_lease(task_id, self._holder))

    async def _renew(self, task_id: str) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self._store.take_lease(task_id, self._holder):
                    log.warning("a2a_push_lease_lost", task_id=task_id)
            except Exception as exc:  # Redis away: try again next beat
                raise_if_cancelling()
                log.warning("a2a_push_lease_failed", task_id=task_id, error=type(exc).__name__)

    async def _notify(self, task_id: str, update: Update) -> None:
        configs = await self._store.list(task_id)  # read now: a deleted config gets nothing
        if not configs:
            return
        response = to_stream_response(update)  # the payload is a StreamResponse, as on SSE
        body = json.dumps(to_dict(response), separators=(",", ":")).encode()
        label = f"{task_id}:{response.WhichOneof('payload')}"
        hooks = [
            Webhook(url=config.url, body=body, headers=webhook_headers(config), label=label)
            for config in configs
        ]
        await asyncio.gather(*(self._delivery.deliver(hook) for hook in hooks))

    async def aclose(self) -> None:
        tasks = list(self._following.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
