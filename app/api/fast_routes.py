"""Routes whose arguments are found without FastAPI's dependency solving, when nothing needs it.

FastAPI solves a route's dependency tree on every request: each node (the body, the
principal, its two security schemes, the services) is a recursive ``solve_dependencies`` call
that also re-reads path, query, header and cookie parameters. On the run routes that is about
30 us of CPU per node on our bench machine, ~180 us of a cached invoke's ~700 us fixed cost
(bench/agent_microbench.py). The tree stays declared (it is what OpenAPI documents and what
a request that is not plain takes); an endpoint marked with ``fast_arguments`` also gets a
resolver that finds the same arguments directly for the common request: a JSON body that
validates, a caller who is allowed. Anything else (no or another content type, bad JSON, a
body that does not validate, a caller refused, dependency overrides, include-level
dependencies, FastAPI's telemetry) returns None or is never tried, and FastAPI solves the
request as always, so every error keeps FastAPI's exact shape.
tests/integration/test_fast_routes.py holds both paths to the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute, _effective_route_context_var
from fastapi.telemetry import get_telemetry_data

# The resolver: (request, validated body, the route's sub-response) -> the endpoint's keyword
# arguments, or None for "let FastAPI solve this one".
FastArguments = Callable[[Request, Any, Response], Awaitable[dict[str, Any] | None]]
# A route's fast path: the Response, or None for "FastAPI solves this request".
FastHandler = Callable[[Request], Awaitable[Response | None]]
# Set on a request's scope once its fast path declined it: FastAPI's handler solves it at once.
DECLINED = "agent_service.fast_declined"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_MARK = "__fast_arguments__"
_UNSET = object()


def fast_arguments(resolver: FastArguments) -> Callable[[Endpoint], Endpoint]:
    """Marks an endpoint of a ``FastRoute`` router: ``resolver`` finds its arguments."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _MARK, resolver)
        return endpoint

    return mark


def _is_plain_json(content_type: str | None) -> bool:
    # FastAPI also takes "+json" subtypes and parameters; those are rare and take its path.
    return content_type is not None and content_type.lower() == "application/json"


class FastRoute(APIRoute):
    """An APIRoute that, for a marked endpoint, tries its resolver before FastAPI's solving."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        solve = super().get_route_handler()
        # FastAPI builds an included route's handler under that inclusion's context (prefix,
        # dependencies, overrides); the handler must be that inclusion's, not the bare route's.
        context = _effective_route_context_var.get()
        fast = self.fast_handler(context if context is not None else self)
        if fast is None:
            return solve

        async def handle(request: Request) -> Response:
            if DECLINED not in request.scope:  # app/api/direct_routes.py tried it already
                response = await fast(request)
                if response is not None:
                    return response
            return await solve(request)

        return handle

    def fast_handler(self, route: Any) -> FastHandler | None:
        """This route's fast path as ``route`` includes it (the route itself, or FastAPI's
        context of one inclusion): a request's Response, or None when FastAPI must solve it.
        None at all when the endpoint is not marked or the inclusion adds dependencies."""
        resolver: FastArguments | None = getattr(self.endpoint, _MARK, None)
        if getattr(route, "original_route", self) is not self:
            route = self
        # Dependencies added by a router or include_router are not the resolver's to know.
        if resolver is None or route.dependencies:
            return None
        endpoint, body_field = route.endpoint, route.body_field
        overrides = route.dependency_overrides_provider
        # A model result is rendered as FastAPI renders it with the default response class.
        renders = route.response_field is not None and isinstance(
            route.response_class, DefaultPlaceholder
        )

        async def fast(request: Request) -> Response | None:
            if (overrides is not None and overrides.dependency_overrides) or (
                get_telemetry_data() is not None
            ):
                return None
            body: Any = None
            if body_field is not None:
                body = await _json_body(request)
                if body is _UNSET:
                    return None
                body, errors = body_field.validate(body, {}, loc=("body",))
                if errors:
                    return None
            sub_response = Response()
            del sub_response.headers["content-length"]
            sub_response.status_code = None  # type: ignore[assignment]  # FastAPI's own idiom
            arguments = await resolver(request, body, sub_response)
            if arguments is None:
                return None
            result = await endpoint(**arguments)
            if isinstance(result, Response):
                return result
            if not renders:
                raise TypeError(f"{route.path}: a fast route returns a Response or a model")
            return _render(route, result, sub_response)

        return fast


async def _json_body(request: Request) -> Any:
    """The body as FastAPI's JSON path parses it (the bytes stay on the request, so a fallback
    reads them again), or _UNSET when that path is not ours to take."""
    if not _is_plain_json(request.headers.get("content-type")):
        return _UNSET
    try:
        raw = await request.body()
    except Exception:  # noqa: BLE001 - a body cut short (over the size limit, client gone):
        return _UNSET  # FastAPI's path answers it as it always has
    if not raw:
        return _UNSET
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and undecodable bytes: FastAPI words that 422
        return _UNSET


def _render(route: Any, result: Any, sub_response: Response) -> Response:
    """What FastAPI's handler does with a returned model: validated against and dumped
    through the response field, the sub-response's status and headers applied."""
    field = route.response_field
    value, errors = field.validate(result, {}, loc=("response",))
    if errors:  # a bug of ours, reported as FastAPI reports it
        raise ResponseValidationError(errors=errors, body=result)
    content = field.serialize_json(
        value,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    status = sub_response.status_code or route.status_code or 200
    response = Response(content=content, media_type="application/json", status_code=status)
    response.headers.raw.extend(sub_response.headers.raw)
    return response
