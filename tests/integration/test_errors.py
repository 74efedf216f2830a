"""Every error a client can get is problem+json with a request id and no internals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import AppClient, SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nowhere")
    body = assert_problem(response, 404, "not_found")
    assert body["type"].endswith("/not_found")
    assert body["title"] == "Not Found"


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/auth/me")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_422_problem(client: httpx.AsyncClient, admin_token: str) -> None:
    response = await client.post(
        "/v1/auth/api-keys",
        content=b'{"name": ',
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation_error")


async def test_validation_errors_never_echo_the_input(client: httpx.AsyncClient) -> None:
    secret_like = "my-very-secret-password-value"
    response = await client.post(
        "/v1/auth/token",
        data={"password": secret_like},  # username missing
    )
    assert_problem(response, 422, "validation_error")
    assert secret_like not in response.text


async def test_oversized_body_is_413_problem(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(MAX_REQUEST_BODY_BYTES=1024)) as client:
        token = await login(client)
        response = await client.post(
            "/v1/auth/api-keys",
            content=b"x" * 2048,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert_problem(response, 413, "payload_too_large")


async def test_oversized_chunked_body_without_length_is_413(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(MAX_REQUEST_BODY_BYTES=1024)) as client:
        token = await login(client)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"y" * 512

        response = await client.post(
            "/v1/auth/api-keys",
            content=chunks(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, "payload_too_large")


async def test_unhandled_exception_is_a_bare_500_problem(client: AppClient) -> None:
    async def boom() -> None:
        raise RuntimeError("database password is hunter2 at /srv/app/secret.py line 3")

    client.app.add_api_route("/boom", boom)
    response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-500"
    assert body["detail"] == "An internal error occurred."
    for leak in ("hunter2", "RuntimeError", "Traceback", "secret.py"):
        assert leak not in response.text


@pytest.mark.parametrize("path", ["/health/live", "/v1/auth/me", "/nowhere"])
async def test_security_headers_on_every_response(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_hsts_only_when_configured(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(HSTS_SECONDS=31536000)) as client:
        response = await client.get("/health/live")
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    async with app_client(make_settings()) as client:
        response = await client.get("/health/live")
        assert "strict-transport-security" not in response.headers


async def test_cors_preflight_allows_configured_origin_only(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(CORS_ORIGINS=["https://app.example"])) as client:
        allowed = await client.options(
            "/v1/auth/me",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        denied = await client.options(
            "/v1/auth/me",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in denied.headers


async def test_openapi_shows_both_security_schemes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["type"] == "oauth2"
    assert set(schemes["OAuth2PasswordBearer"]["flows"]["password"]["scopes"]) >= {
        "agents:run",
        "sessions:read",
        "sessions:write",
        "tasks:read",
        "tasks:write",
        "admin",
    }
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    me = spec["paths"]["/v1/auth/me"]["get"]
    assert {next(iter(s)) for s in me["security"]} == {"OAuth2PasswordBearer", "APIKeyHeader"}


async def test_docs_can_be_switched_off(make_settings: SettingsFactory) -> None:
    async with app_client(make_settings(DOCS_ENABLED=False)) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404


async def test_405_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/sessions")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
