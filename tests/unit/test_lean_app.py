"""LeanFastAPI: FastAPI's stack without the two layers it adds for features we leave off,
with the fast routes' direct path inside its exception middleware."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Router

from app.api.direct_routes import DirectRoutes
from app.api.lean_app import LeanFastAPI
from app.main import create_app
from app.middleware.request_context import RequestContextMiddleware
from tests.conftest import SettingsFactory


def _layers(app: Any) -> list[type]:
    layers = []
    while not isinstance(app, Router):
        layers.append(type(app))
        app = app.app
    return layers


def _fastapi_stack(make_settings: SettingsFactory) -> Any:
    app = create_app(make_settings())
    assert isinstance(app, LeanFastAPI)
    return FastAPI.build_middleware_stack(app)  # what FastAPI itself would build


def test_the_service_stack_has_no_pass_through_layers(make_settings: SettingsFactory) -> None:
    layers = _layers(create_app(make_settings()).build_middleware_stack())
    assert layers[0] is ServerErrorMiddleware
    assert ExceptionTelemetryMiddleware not in layers
    assert AppBodyLimitMiddleware not in layers
    assert RequestContextMiddleware in layers  # ours all stay, in FastAPI's order
    # and the fast routes' direct path sits right inside FastAPI's exception middleware
    assert layers[layers.index(ExceptionMiddleware) + 1] is DirectRoutes
    assert len(layers) == len(_layers(_fastapi_stack(make_settings))) - 2 + 1


def test_fastapi_features_that_would_need_the_layers_are_refused() -> None:
    with pytest.raises(ValueError, match="our own middleware"):
        LeanFastAPI(max_body_size=1024)
    app = LeanFastAPI()
    assert not any(app._telemetry[key] for key in ("tracing", "metrics", "logs"))
