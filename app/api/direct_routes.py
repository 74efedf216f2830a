"""The fast routes answered where FastAPI's router would be called, past its routing layers.

An open stream keeps every coroutine between uvicorn and its endpoint alive as long as it
lasts, and a request pays a call for each. Between our middlewares and a run route's endpoint
FastAPI 0.165 puts a dozen: its exit-stack middleware, the router and the included router's
dispatch (six frames), and ``request_response`` with its exception wrapper and the two exit
stacks it opens for dependencies with ``yield``. A fast route (app/api/fast_routes.py) needs
none of them when its resolver takes the request: no dependency is solved, nothing needs an
exit stack. ``DirectRoutes`` is the app FastAPI's exception middleware calls: a request whose
route template (the app's RouteTable, matched in FastAPI's order) belongs to a fast route gets
the scope FastAPI's routing would give it (path parameters, endpoint, route) and that route's
fast path, in one frame. An exception goes up to the exception middleware, whose handlers are
the ones FastAPI's route wrapper would have used. A request the fast path declines (anything
but a plain JSON body from a caller who is allowed) goes down FastAPI's own path with its
body replayed, and is solved there as before. tests/integration/test_fast_routes.py holds the
two paths to the same answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import _IncludedRouter
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.fast_routes import DECLINED, FastHandler, FastRoute
from app.core.routing import RouteTable


@dataclass(frozen=True, slots=True)
class DirectRoute:
    context: Any  # the route, or FastAPI's context of one inclusion of it: what it matches with
    route: FastRoute
    fast: FastHandler


def direct_routes(routes: Iterable[BaseRoute]) -> dict[str, DirectRoute]:
    """The app's fast routes by full path template, each as FastAPI included it (an included
    router's routes are FastAPI's private ``_IncludedRouter``; its contexts, per inclusion,
    carry the prefix, the dependencies and the handler FastAPI built)."""
    found: dict[str, DirectRoute] = {}
    for route in routes:
        contexts: Iterable[Any] = (
            route.effective_route_contexts() if isinstance(route, _IncludedRouter) else [route]
        )
        for context in contexts:
            original = getattr(context, "original_route", context)
            if not isinstance(original, FastRoute):
                continue
            fast = original.fast_handler(context)
            if fast is not None:  # the first route of a template is the one FastAPI picks
                found.setdefault(context.path_format, DirectRoute(context, original, fast))
    return found


class DirectRoutes:
    def __init__(self, app: ASGIApp, *, table: RouteTable, routes: dict[str, DirectRoute]) -> None:
        self.app = app  # FastAPI's path: its exit-stack middleware, then the router
        self.table = table
        self.routes = routes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: a request that is not a fast route's costs no frame here.
        if scope["type"] == "http":
            direct = self.routes.get(self.table.template_for(scope))
            if direct is not None:
                return self._serve(direct, scope, receive, send)
        return self.app(scope, receive, send)

    async def _serve(self, direct: DirectRoute, scope: Scope, receive: Receive, send: Send) -> None:
        match, child_scope = direct.context.matches(scope)
        if match is not Match.FULL:  # another method (405): FastAPI's answer
            await self.app(scope, receive, send)
            return
        scope.update(child_scope)
        scope["route"] = direct.route
        request = Request(scope, receive, send)
        response = await direct.fast(request)
        if response is None:
            scope[DECLINED] = True  # FastAPI's handler solves it without trying again
            await self.app(scope, await _replaying(request, receive), send)
            return
        await response(scope, receive, send)


async def _replaying(request: Request, receive: Receive) -> Receive:
    """``receive`` as FastAPI's path must see it: the body the fast path read, then what
    follows (a disconnect). A body cut short (over the size limit, the client gone) is left as
    it came: FastAPI's path meets the same end and answers as it always has."""
    try:
        body = await request.body()  # what the fast path read, kept on the request
    except Exception:  # noqa: BLE001 - see the docstring
        return receive
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
