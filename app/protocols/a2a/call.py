"""Who is calling, on which agent, with what: one ``A2ACall`` per JSON-RPC request, put in the
SDK's ServerCallContext; and the surface's per-process parts (push configs, their notifier,
the webhook sender), built from the services on first use and closed with the app.

The SDK's handler interface passes a ServerCallContext it builds from the request (its
ServerCallContextBuilder); ours takes the call our route authorised, so a handler never sees
a request and never reads app state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from a2a.extensions.common import HTTP_EXTENSION_HEADER, get_requested_extensions
from a2a.server.context import ServerCallContext
from a2a.server.routes.common import ServerCallContextBuilder
from a2a.utils.errors import InternalError
from starlette.requests import Request

from app.core.config import Settings
from app.protocols.a2a.push_notifier import PushNotifier
from app.protocols.a2a.push_store import PushConfigStore, build_push_store
from app.protocols.a2a.task_view import TaskLinks
from app.security.principals import Principal
from app.services import AppServices
from app.tasks.webhook_delivery import WebhookDelivery, WebhookPolicy

CALL_KEY = "agent_service.a2a_call"  # where the route leaves the call in the ASGI scope


@dataclass(frozen=True, slots=True)
class PushParts:
    store: PushConfigStore
    notifier: PushNotifier
    allow_private: bool


@dataclass(frozen=True, slots=True)
class A2ACall:
    principal: Principal
    agent: str
    services: AppServices
    links: TaskLinks
    push: PushParts

    @property
    def settings(self) -> Settings:
        return self.services.settings


def call_of(context: ServerCallContext) -> A2ACall:
    call = context.state.get("a2a")
    if not isinstance(call, A2ACall):  # only our route dispatches: a bug, never a client's
        raise InternalError("The request could not be completed.")
    return call


class CallContextBuilder(ServerCallContextBuilder):
    def build(self, request: Request) -> ServerCallContext:
        # "headers" is where the SDK's version check (A2A-Version) looks.
        state = {"headers": dict(request.headers), "a2a": request.scope.get(CALL_KEY)}
        extensions = get_requested_extensions(request.headers.getlist(HTTP_EXTENSION_HEADER))
        return ServerCallContext(state=state, requested_extensions=extensions)


class A2ARuntime:
    """Built at mount time (before the services exist); its parts on the first request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._parts: PushParts | None = None
        self._delivery: WebhookDelivery | None = None

    def parts(self, services: AppServices) -> PushParts:
        if self._parts is None:
            allow_private = self._settings.A2A_PUSH_ALLOW_PRIVATE_URLS
            self._delivery = WebhookDelivery(policy=WebhookPolicy(allow_private=allow_private))
            store = build_push_store(services.redis, prefix=self._settings.REDIS_KEY_PREFIX)
            notifier = PushNotifier(
                store=store,
                runs=services.runs,
                delivery=self._delivery,
                holder=services.runs.holder or uuid.uuid4().hex,
            )
            self._parts = PushParts(store=store, notifier=notifier, allow_private=allow_private)
        return self._parts

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        try:
            yield
        finally:  # notifiers first: they use the sender
            if self._parts is not None:
                await self._parts.notifier.aclose()
            if self._delivery is not None:
                await self._delivery.aclose()
            self._parts = None
            self._delivery = None
