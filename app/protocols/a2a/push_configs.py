"""A2A's push notification config methods (create, get, list, delete), on the caller's own
tasks only, and the config a SendMessage may carry.

A config's URL is checked when it is set (http(s); a public address unless
A2A_PUSH_ALLOW_PRIVATE_URLS) and again before every delivery, since a name may resolve
elsewhere later. Setting one starts the task's notifier (push_notifier.py), which sends what
happens from then on.
"""

from __future__ import annotations

from a2a.types import (
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError

from app.protocols.a2a.call import A2ACall
from app.protocols.a2a.push_store import MAX_CONFIGS_PER_TASK
from app.protocols.a2a.task_flow import A2ATasks
from app.store.run_records import RunRecord
from app.tasks.webhook_delivery import UnsafeWebhookUrl, check_webhook_url

MAX_SECRET_LENGTH = 4096  # a token or credentials: anything longer is not a header value


class PushConfigs:
    def __init__(self, tasks: A2ATasks) -> None:
        self._tasks = tasks

    async def create(
        self, call: A2ACall, config: TaskPushNotificationConfig, *, record: RunRecord | None = None
    ) -> TaskPushNotificationConfig:
        """Store the config for the caller's task; ``record``: the task, when the caller just
        made it (its notifications then start with its first event)."""
        after = 0
        if record is None:
            record = await self._tasks.get(call, config.task_id)
            after = await call.services.tasks.backend.store.last_seq(record.id)
        await self.check(call, config)
        stored = TaskPushNotificationConfig()
        stored.CopyFrom(config)
        stored.task_id = record.id
        stored.tenant = ""
        stored.id = config.id or record.id  # the SDK's default: one unnamed config per task
        ttl = call.settings.TASK_RETENTION_SECONDS
        if not await call.push.store.put(stored, ttl_seconds=ttl):
            raise InvalidParamsError(
                f"A task takes at most {MAX_CONFIGS_PER_TASK} push notification configs."
            )
        call.push.notifier.ensure(record, call.links, after=after)
        return stored

    async def check(self, call: A2ACall, config: TaskPushNotificationConfig) -> None:
        """InvalidParamsError unless the config can be stored and used."""
        if not config.url:
            raise InvalidParamsError("A push notification config needs a url.")
        secrets = (config.token, config.authentication.scheme, config.authentication.credentials)
        for value in secrets:
            if len(value) > MAX_SECRET_LENGTH or any(ch in value for ch in "\r\n\0"):
                raise InvalidParamsError(
                    "The token and authentication must be single-line header values."
                )
        try:
            await check_webhook_url(config.url, allow_private=call.push.allow_private)
        except UnsafeWebhookUrl as exc:
            raise InvalidParamsError(f"The push notification url is refused: {exc}.") from None

    async def get(
        self, call: A2ACall, request: GetTaskPushNotificationConfigRequest
    ) -> TaskPushNotificationConfig:
        record = await self._tasks.get(call, request.task_id)
        config = await call.push.store.get(record.id, request.id or record.id)
        if config is None:
            raise TaskNotFoundError("No push notification config with this id for the task.")
        return config

    async def list(
        self, call: A2ACall, request: ListTaskPushNotificationConfigsRequest
    ) -> ListTaskPushNotificationConfigsResponse:
        record = await self._tasks.get(call, request.task_id)
        configs = await call.push.store.list(record.id)
        return ListTaskPushNotificationConfigsResponse(configs=configs, next_page_token="")

    async def delete(self, call: A2ACall, request: DeleteTaskPushNotificationConfigRequest) -> None:
        record = await self._tasks.get(call, request.task_id)
        await call.push.store.delete(record.id, request.id or record.id)

    async def revive(self, call: A2ACall, record: RunRecord) -> None:
        """Start notifying again from now when the task has configs and no notifier (its
        process ended); called when a request touches the task."""
        if record.finished or not await call.push.store.list(record.id):
            return
        after = await call.services.tasks.backend.store.last_seq(record.id)
        call.push.notifier.ensure(record, call.links, after=after)
