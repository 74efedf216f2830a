"""The SDK's RequestHandler over our tasks: the one class its JSON-RPC dispatcher calls (for
A2A 1.0 methods, and through its 0.3 adapter for the old names). Each method reads the
authorised call from the context and translates errors (errors.py); the work is in
task_flow.py and push_configs.py."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import UnsupportedOperationError

from app.protocols.a2a.call import A2ACall, call_of
from app.protocols.a2a.errors import a2a_errors, stream_with_a2a_errors
from app.protocols.a2a.push_configs import PushConfigs
from app.protocols.a2a.task_events import TaskEvents
from app.protocols.a2a.task_flow import A2ATasks, Sent
from app.protocols.a2a.task_view import TERMINAL_STATES, task_of


def _history_length(has: bool, value: int) -> int | None:
    return value if has else None


class RunsRequestHandler(RequestHandler):
    def __init__(self) -> None:
        self._tasks = A2ATasks()
        self._push = PushConfigs(self._tasks)

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        call = call_of(context)
        with a2a_errors("GetTask"):
            record = await self._tasks.get(call, params.id)
            history = _history_length(params.HasField("history_length"), params.history_length)
            return task_of(record, call.links, history_length=history)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        with a2a_errors("ListTasks"):
            return await self._tasks.list(call_of(context), params)

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        with a2a_errors("CancelTask"):
            return await self._tasks.cancel(call_of(context), params.id)

    async def _send(self, call: A2ACall, params: SendMessageRequest) -> Sent:
        config = params.configuration.task_push_notification_config
        wants_push = params.configuration.HasField("task_push_notification_config")
        if wants_push:
            await self._push.check(call, config)  # before the task exists: refused, none made
        sent = await self._tasks.send(call, params)
        if wants_push:
            await self._push.create(call, config, record=sent.record if not sent.answered else None)
        elif sent.answered:
            await self._push.revive(call, sent.record)
        return sent

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        call = call_of(context)
        with a2a_errors("SendMessage"):
            sent = await self._send(call, params)
            configuration = params.configuration
            history = _history_length(
                configuration.HasField("history_length"), configuration.history_length
            )
            if configuration.return_immediately:
                return task_of(sent.record, call.links, history_length=history)
            return await self._tasks.wait(call, sent, history_length=history)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        call = call_of(context)
        with a2a_errors("SendStreamingMessage"):
            sent = await self._send(call, params)
        events = TaskEvents(sent.record, call.links, chunks=True)
        stream = self._tasks.follow(
            call, events, after=sent.after, answered=sent.answered, until_input=True
        )
        async for item in stream_with_a2a_errors(stream, "SendStreamingMessage"):
            yield item

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        call = call_of(context)
        with a2a_errors("SubscribeToTask"):
            record = await self._tasks.get(call, params.id)
            if record.finished:
                raise UnsupportedOperationError(
                    f"The task is {record.status}: nothing more will happen; GetTask reads it."
                )
            await self._push.revive(call, record)
            after = await call.services.tasks.backend.store.last_seq(record.id)
        events = TaskEvents(record, call.links, chunks=True)
        stream = self._tasks.follow(call, events, after=after, answered=False, until_input=False)
        async for item in stream_with_a2a_errors(stream, "SubscribeToTask"):
            if isinstance(item, Task) and item.status.state in TERMINAL_STATES:
                yield item  # it ended between the check and now: the Task says how
                return
            yield item

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        with a2a_errors("CreateTaskPushNotificationConfig"):
            return await self._push.create(call_of(context), params)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        with a2a_errors("GetTaskPushNotificationConfig"):
            return await self._push.get(call_of(context), params)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        with a2a_errors("ListTaskPushNotificationConfigs"):
            return await self._push.list(call_of(context), params)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        with a2a_errors("DeleteTaskPushNotificationConfig"):
            await self._push.delete(call_of(context), params)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        # The public card is the whole card: capabilities.extendedAgentCard is false.
        raise UnsupportedOperationError("This agent has no extended agent card.")
