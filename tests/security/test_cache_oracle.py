"""Finding 10: the LLM cache answered one principal with what another had asked.

A second principal sending the same text got ``X-Cache: HIT`` and the identical answer, so it
learned what someone else asked. ``CACHE_SCOPE=principal`` puts the caller in the cache key
(entries and in-flight calls are per principal); ``global`` keeps the shared cache a
single-organisation deployment wants, and says so (``X-Cache: HIT`` across principals is the
documented behaviour there). Real server processes; one with Redis and two gunicorn workers,
where the cache lives in Redis and either worker may answer.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.security.conftest import bearer, login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

AGENT = "assistant"


def secret_question() -> str:
    # Unique per test: nothing another test stored can answer it.
    return f"What did the board decide about project {uuid.uuid4().hex[:8]}?"


def ask(server: ServerProcess, headers: dict[str, str], text: str) -> httpx.Response:
    response = httpx.post(
        f"{server.url}/v1/agents/{AGENT}/invoke", json={"input": text}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response


def two_principals(server: ServerProcess) -> tuple[dict[str, str], dict[str, str]]:
    """The admin user (user:admin) and an API key it creates (key:<id>): two principals."""
    admin = bearer(login(server.url))
    created = httpx.post(
        f"{server.url}/v1/auth/api-keys",
        json={"name": "other-team", "scopes": ["agents:run"]},
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    other = {"X-API-Key": created.json()["key"]}
    me = httpx.get(f"{server.url}/v1/auth/me", headers=other, timeout=10).json()
    assert me["id"].startswith("key:")
    return admin, other


def assert_partitioned(server: ServerProcess) -> None:
    first, second = two_principals(server)
    text = secret_question()
    assert ask(server, first, text).headers["X-Cache"] == "MISS"
    # The cache still works for the principal who asked ...
    again = ask(server, first, text)
    assert again.headers["X-Cache"] == "HIT" and again.json()["cached"] is True
    # ... but tells the other principal nothing: computed afresh, as if nobody had asked.
    probe = ask(server, second, text)
    assert probe.headers["X-Cache"] == "MISS"
    assert probe.json()["cached"] is False
    # Its own entry now exists; the first principal's is untouched.
    assert ask(server, second, text).headers["X-Cache"] == "HIT"
    assert ask(server, first, text).headers["X-Cache"] == "HIT"


def test_principal_scope_keeps_each_principal_s_questions_to_itself() -> None:
    with ServerProcess(env={"CACHE_SCOPE": "principal"}) as server:
        assert_partitioned(server)


def test_principal_scope_holds_across_processes_sharing_a_redis_cache(
    redis_server: RedisServer,
) -> None:
    env = {
        "CACHE_SCOPE": "principal",
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"cache-oracle-{uuid.uuid4().hex[:8]}:",
    }
    with ServerProcess(env=env, gunicorn=True, workers=2) as server:
        assert_partitioned(server)


@pytest.mark.parametrize("env", [{}, {"CACHE_SCOPE": "global"}], ids=["default", "global"])
def test_global_scope_shares_answers_across_principals_as_documented(env: dict[str, str]) -> None:
    with ServerProcess(env=env) as server:
        first, second = two_principals(server)
        text = secret_question()
        answer = ask(server, first, text)
        assert answer.headers["X-Cache"] == "MISS"
        shared = ask(server, second, text)
        assert shared.headers["X-Cache"] == "HIT"
        assert shared.json()["output"] == answer.json()["output"]
