"""Request ids and log hygiene, read from the real server's log output."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import ADMIN_PASSWORD, login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess


def test_request_id_is_echoed_or_generated_and_logged() -> None:
    with ServerProcess() as server:
        given = httpx.get(f"{server.url}/v1/auth/me", headers={"X-Request-ID": "client-id-42"})
        assert given.headers["x-request-id"] == "client-id-42"
        assert given.json()["request_id"] == "client-id-42"
        generated = httpx.get(f"{server.url}/v1/auth/me").headers["x-request-id"]
        assert len(generated) == 32 and generated != "client-id-42"
        hostile = httpx.get(
            f"{server.url}/v1/auth/me", headers={"X-Request-ID": 'a b"<script>' + "x" * 200}
        ).headers["x-request-id"]
        assert "<script>" not in hostile and len(hostile) == 32
        server.stop()
        access = [e for e in server.json_lines() if e.get("event") == "request"]
        by_id = {e["request_id"]: e for e in access}
        for request_id in ("client-id-42", generated, hostile):
            line = by_id[request_id]
            assert line["route"] == "/v1/auth/me"
            assert line["status"] == 401
            assert line["method"] == "GET"
            assert isinstance(line["duration_ms"], float)


def test_secrets_never_appear_in_logs(redis_server: RedisServer) -> None:
    redis_server.start()
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": "e2e-redaction:"}
    with ServerProcess(env=env) as server:
        token = login(server.url)
        created = httpx.post(
            f"{server.url}/v1/auth/api-keys",
            json={"name": "logged", "scopes": ["agents:run"]},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        key = created["key"]
        wrong_password = "Wr0ng-pa55word-never-logged"
        httpx.post(
            f"{server.url}/v1/auth/token", data={"username": "admin", "password": wrong_password}
        )
        httpx.get(f"{server.url}/v1/auth/me", headers={"X-API-Key": key})
        httpx.get(f"{server.url}/v1/auth/me", headers={"X-API-Key": key + "tampered"})
        httpx.get(f"{server.url}/v1/auth/me?token={token}&api_key={key}")
        httpx.get(f"{server.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}x"})
        server.stop()
        logs = server.logs()
        assert logs.count('"event": "request"') >= 6
        for secret in (token, key, ADMIN_PASSWORD, wrong_password, key[12:]):
            assert secret not in logs
