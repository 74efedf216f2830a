"""Finding 2: tokens and API keys outlive what should end them.

Attacks, against two real server processes sharing one Redis (A and B, the user cache TTL
set to a minute so only pub/sub can explain a refusal within the bound): a disabled,
deleted or re-passworded user keeps using its token; a signed-out token keeps working; a
disabled user's API keys keep working and it mints new ones; an API key never expires; the
admin password is rotated and old admin tokens live on. Plus the operator's side: users
managed over HTTP and from the CLI, the password policy, and Redis going down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_TOPOLOGIES, redis_url_for
from tests.security.conftest import bearer, login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ROOT, ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = pytest.mark.xdist_group("revocation")

PROBLEM = "application/problem+json"
PASSWORD = "correct-horse-battery"
# Well within the one-minute cache TTL: a refusal this fast came over pub/sub.
PROPAGATION_BOUND_SECONDS = 2.0
GENEROUS_LIMITS = {
    "RATE_LIMIT_REQUESTS": "100000",
    "RATE_LIMIT_ROUTES": '{"POST /v1/auth/token": "10000/minute"}',
    "AUTH_FAILURE_LIMIT": "100000/minute",
}


def _env(redis: RedisServer | str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis if isinstance(redis, str) else redis.url,
        "REDIS_KEY_PREFIX": prefix,
        "USER_CHECK_TTL_SECONDS": "60",
        **GENEROUS_LIMITS,
        **extra,
    }


class Pair:
    """Two replicas on one Redis, an admin token, and helpers that read like the attack."""

    def __init__(self, a: ServerProcess, b: ServerProcess, env: dict[str, str]) -> None:
        self.a, self.b, self.env = a, b, env
        self.admin = bearer(login(a.url))

    def create_user(self, scopes: list[str], password: str = PASSWORD) -> str:
        name = f"u{uuid.uuid4().hex[:14]}"
        response = httpx.post(
            f"{self.a.url}/v1/auth/users",
            json={"username": name, "password": password, "scopes": scopes},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        return name

    def admin_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.a.url}{path}", headers=self.admin, **kwargs)


def me(server: ServerProcess, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/auth/me", headers=headers, timeout=5)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def refused_within(check: Callable[[], httpx.Response], code: str, bound: float) -> float:
    """Seconds until ``check`` answers 401 ``code``; fails past ``bound``."""
    started = time.monotonic()
    while True:
        response = check()
        if response.status_code == 401:
            assert_problem(response, 401, code)
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < bound, f"still accepted after {bound} s"
        time.sleep(0.02)


@pytest.fixture(scope="module", params=REDIS_TOPOLOGIES)
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Two replicas on one Redis, then on a cluster (where the change notices travel by
    classic pub/sub, broadcast to every node)."""
    env = _env(redis_url_for(request, str(request.param)), f"revocation-{uuid.uuid4().hex[:8]}:")
    with ServerProcess(env=env) as a, ServerProcess(env=env) as b:
        yield Pair(a, b, env)


def test_a_disabled_user_is_refused_on_every_replica_at_once(pair: Pair) -> None:
    name = pair.create_user(["agents:run"])
    token = bearer(login(pair.a.url, username=name, password=PASSWORD))
    assert me(pair.b, token).status_code == 200  # B has the user cached now

    assert pair.admin_call("POST", f"/v1/auth/users/{name}/disable").status_code == 200

    assert_problem(me(pair.a, token), 401, "token_revoked")  # the changing process: at once
    elapsed = refused_within(lambda: me(pair.b, token), "token_revoked", PROPAGATION_BOUND_SECONDS)
    assert elapsed < PROPAGATION_BOUND_SECONDS
    refused = httpx.post(
        f"{pair.b.url}/v1/auth/token", data={"username": name, "password": PASSWORD}
    )
    assert_problem(refused, 401, "invalid_credentials")

    # Enabled again: a new sign-in works, the token from before the disable stays dead.
    assert pair.admin_call("POST", f"/v1/auth/users/{name}/enable").status_code == 200
    fresh = bearer(login(pair.b.url, username=name, password=PASSWORD))
    assert me(pair.a, fresh).status_code == 200
    assert_problem(me(pair.b, token), 401, "token_revoked")


def test_a_deleted_user_loses_its_tokens_and_api_keys_for_good(pair: Pair) -> None:
    name = pair.create_user(["admin"])
    token = bearer(login(pair.a.url, username=name, password=PASSWORD))
    created = httpx.post(
        f"{pair.a.url}/v1/auth/api-keys",
        json={"name": "bot", "scopes": ["agents:run"]},
        headers=token,
    ).json()
    key = {"X-API-Key": created["key"]}
    assert me(pair.b, key).status_code == 200 and me(pair.b, token).status_code == 200

    assert pair.admin_call("DELETE", f"/v1/auth/users/{name}").status_code == 204

    refused_within(lambda: me(pair.b, token), "token_revoked", PROPAGATION_BOUND_SECONDS)
    assert me(pair.b, key).status_code == 401
    # A new user of the same name does not inherit the old one's key.
    recreated = pair.admin_call(
        "POST",
        "/v1/auth/users",
        json={"username": name, "password": PASSWORD, "scopes": ["admin"]},
    )
    assert recreated.status_code == 201
    assert me(pair.b, key).status_code == 401
    assert_problem(me(pair.a, token), 401, "token_revoked")  # issued before the new user
    listed = pair.admin_call("GET", "/v1/auth/api-keys").json()["items"]
    assert next(k for k in listed if k["id"] == created["id"])["revoked_at"] is not None


def test_a_disabled_users_api_keys_stop_and_it_cannot_mint_new_ones(pair: Pair) -> None:
    name = pair.create_user(["admin"])
    token = bearer(login(pair.a.url, username=name, password=PASSWORD))
    created = httpx.post(
        f"{pair.a.url}/v1/auth/api-keys",
        json={"name": "bot", "scopes": ["admin"]},
        headers=token,
    ).json()
    key = {"X-API-Key": created["key"]}
    assert created["created_by"] == f"user:{name}"
    assert me(pair.b, key).status_code == 200

    assert pair.admin_call("POST", f"/v1/auth/users/{name}/disable").status_code == 200

    refused_within(lambda: me(pair.b, key), "api_key_revoked", PROPAGATION_BOUND_SECONDS)
    for credentials, code in ((token, "token_revoked"), (key, "api_key_revoked")):
        mint = httpx.post(
            f"{pair.b.url}/v1/auth/api-keys",
            json={"name": "escape", "scopes": ["admin"]},
            headers=credentials,
        )
        assert_problem(mint, 401, code)
    # Back on: the user's keys work again (the tokens from before do not).
    assert pair.admin_call("POST", f"/v1/auth/users/{name}/enable").status_code == 200
    assert me(pair.a, key).status_code == 200


def test_setting_a_password_ends_earlier_tokens_and_not_the_next_sign_in(pair: Pair) -> None:
    name = pair.create_user(["agents:run"])
    old = bearer(login(pair.a.url, username=name, password=PASSWORD))
    assert me(pair.b, old).status_code == 200
    new_password = "another-long-passphrase"

    changed = pair.admin_call(
        "PUT", f"/v1/auth/users/{name}/password", json={"password": new_password}
    )
    assert changed.status_code == 200 and changed.json()["credentials_changed_at"]

    # Signed in right after the change (same second): must not count as "before" it.
    fresh = bearer(login(pair.b.url, username=name, password=new_password))
    assert me(pair.a, fresh).status_code == 200
    refused_within(lambda: me(pair.b, old), "token_revoked", PROPAGATION_BOUND_SECONDS)
    assert me(pair.b, fresh).status_code == 200
    wrong = httpx.post(f"{pair.a.url}/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert_problem(wrong, 401, "invalid_credentials")


def test_revoke_tokens_ends_every_token_of_the_user(pair: Pair) -> None:
    name = pair.create_user(["agents:run"])
    tokens = [bearer(login(pair.a.url, username=name, password=PASSWORD)) for _ in range(2)]
    assert all(me(pair.b, token).status_code == 200 for token in tokens)

    assert pair.admin_call("POST", f"/v1/auth/users/{name}/revoke-tokens").status_code == 200

    for token in tokens:
        refused_within(partial(me, pair.b, token), "token_revoked", PROPAGATION_BOUND_SECONDS)
    assert (
        me(pair.b, bearer(login(pair.a.url, username=name, password=PASSWORD))).status_code == 200
    )


def test_logout_revokes_the_presented_token_everywhere_and_nothing_else(pair: Pair) -> None:
    name = pair.create_user(["agents:run"])
    first, second = (bearer(login(pair.a.url, username=name, password=PASSWORD)) for _ in "ab")
    assert me(pair.b, first).status_code == 200

    response = httpx.post(f"{pair.a.url}/v1/auth/logout", headers=first)
    assert response.status_code == 204

    assert_problem(me(pair.a, first), 401, "token_revoked")
    refused_within(lambda: me(pair.b, first), "token_revoked", PROPAGATION_BOUND_SECONDS)
    assert me(pair.b, second).status_code == 200
    assert_problem(httpx.post(f"{pair.b.url}/v1/auth/logout", headers=first), 401, "token_revoked")

    key = pair.admin_call(
        "POST", "/v1/auth/api-keys", json={"name": "k", "scopes": ["agents:run"]}
    ).json()["key"]
    not_a_token = httpx.post(f"{pair.a.url}/v1/auth/logout", headers={"X-API-Key": key})
    assert_problem(not_a_token, 400, "not_a_session_token")


def test_narrowed_scopes_narrow_live_tokens(pair: Pair) -> None:
    name = pair.create_user(["agents:run", "sessions:read"])
    token = bearer(login(pair.a.url, username=name, password=PASSWORD))
    assert me(pair.b, token).json()["scopes"] == ["agents:run", "sessions:read"]

    narrowed = pair.admin_call(
        "PATCH", f"/v1/auth/users/{name}", json={"scopes": ["sessions:read"]}
    )
    assert narrowed.status_code == 200

    deadline = time.monotonic() + PROPAGATION_BOUND_SECONDS
    while me(pair.b, token).json()["scopes"] != ["sessions:read"]:
        assert time.monotonic() < deadline, "B still grants the removed scope"
        time.sleep(0.02)
    run = httpx.post(
        f"{pair.b.url}/v1/agents/chat/invoke", json={"input": "hi"}, headers=token, timeout=10
    )
    assert_problem(run, 403, "insufficient_scope")


def test_api_keys_expire(pair: Pair) -> None:
    created = pair.admin_call(
        "POST",
        "/v1/auth/api-keys",
        json={"name": "short", "scopes": ["agents:run"], "expires_in": 2},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["expires_at"] is not None
    listed = pair.admin_call("GET", "/v1/auth/api-keys").json()["items"]
    assert next(k for k in listed if k["id"] == body["id"])["expires_at"] == body["expires_at"]
    key = {"X-API-Key": body["key"]}
    assert me(pair.b, key).status_code == 200
    refused_within(lambda: me(pair.b, key), "api_key_expired", bound=6.0)

    for bad in (
        {"name": "x", "scopes": ["agents:run"], "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "scopes": ["agents:run"], "expires_in": 0},
        {"name": "x", "scopes": ["agents:run"], "expires_in": "60"},  # a string, not coerced
        {
            "name": "x",
            "scopes": ["agents:run"],
            "expires_in": 60,
            "expires_at": "2999-01-01T00:00:00Z",
        },
        {"name": "x", "scopes": ["agents:run"], "expires_at": "2999-01-01T00:00:00"},  # no zone
    ):
        assert_problem(
            pair.admin_call("POST", "/v1/auth/api-keys", json=bad), 422, "validation_error"
        )
    lasting = pair.admin_call(
        "POST",
        "/v1/auth/api-keys",
        json={"name": "y", "scopes": ["agents:run"], "expires_at": "2999-01-01T00:00:00+02:00"},
    )
    assert lasting.status_code == 201 and lasting.json()["expires_at"].startswith("2998-12-31T22")


@pytest.mark.parametrize(
    ("password", "code", "says"),
    [
        ("short-pw", "weak_password", "at least 12 characters"),
        ("é" * 40, "password_too_long", "at most 72 bytes"),  # 80 bytes, past bcrypt's limit
        ("{name}", "weak_password", "must not be the username"),
    ],
)
def test_the_password_policy_is_a_422_problem(
    pair: Pair, password: str, code: str, says: str
) -> None:
    name = f"p{uuid.uuid4().hex[:14]}"
    created = pair.admin_call(
        "POST",
        "/v1/auth/users",
        json={"username": name, "password": password.format(name=name), "scopes": ["agents:run"]},
    )
    assert says in assert_problem(created, 422, code)["detail"]
    existing = pair.create_user(["agents:run"])
    changed = pair.admin_call(
        "PUT",
        f"/v1/auth/users/{existing}/password",
        json={"password": password.format(name=existing.upper())},  # case does not help
    )
    assert says in assert_problem(changed, 422, code)["detail"]


def test_user_routes_answer_problems_and_need_admin(pair: Pair) -> None:
    name = pair.create_user(["agents:run"])
    duplicate = pair.admin_call(
        "POST", "/v1/auth/users", json={"username": name, "password": PASSWORD, "scopes": ["admin"]}
    )
    assert_problem(duplicate, 409, "user_exists")
    assert_problem(pair.admin_call("GET", "/v1/auth/users/nobody-here"), 404, "user_not_found")
    assert_problem(pair.admin_call("POST", "/v1/auth/users/admin/disable"), 409, "self_lockout")
    assert_problem(pair.admin_call("DELETE", "/v1/auth/users/admin"), 409, "self_lockout")
    bad_name = pair.admin_call(
        "POST",
        "/v1/auth/users",
        json={"username": "a:b", "password": PASSWORD, "scopes": ["admin"]},
    )
    assert_problem(bad_name, 422, "validation_error")
    listed = pair.admin_call("GET", "/v1/auth/users")
    assert name in [user["username"] for user in listed.json()["items"]]
    assert "password" not in listed.text and "$2b$" not in listed.text
    user_token = bearer(login(pair.a.url, username=name, password=PASSWORD))
    for method, path in (("GET", "/v1/auth/users"), ("POST", f"/v1/auth/users/{name}/enable")):
        response = httpx.request(method, f"{pair.b.url}{path}", headers=user_token)
        assert_problem(response, 403, "insufficient_scope")


def _cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.entrypoints.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_users_cli_manages_the_store_a_running_service_uses(pair: Pair) -> None:
    name = f"c{uuid.uuid4().hex[:10]}"
    created = _cli("users", "create", name, "--scopes", "agents:run", env=pair.env, stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["scopes"] == ["agents:run"]
    assert "password_hash" not in created.stdout
    token = bearer(login(pair.a.url, username=name, password=PASSWORD))
    assert me(pair.b, token).status_code == 200

    assert _cli("users", "disable", name, env=pair.env).returncode == 0
    refused_within(lambda: me(pair.b, token), "token_revoked", PROPAGATION_BOUND_SECONDS)
    listed = json.loads(_cli("users", "list", env=pair.env).stdout)
    assert next(user for user in listed if user["username"] == name)["disabled"] is True

    weak = _cli("users", "set-password", name, env=pair.env, stdin="short")
    assert weak.returncode == 1 and "at least 12" in weak.stderr
    new_password = "a-new-long-passphrase"
    assert _cli("users", "set-password", name, env=pair.env, stdin=new_password).returncode == 0
    assert _cli("users", "enable", name, env=pair.env).returncode == 0
    fresh = bearer(login(pair.b.url, username=name, password=new_password))
    assert me(pair.a, fresh).status_code == 200
    assert _cli("users", "delete", name, env=pair.env).returncode == 0
    refused_within(lambda: me(pair.a, fresh), "token_revoked", PROPAGATION_BOUND_SECONDS)
    missing = _cli("users", "disable", name, env=pair.env)
    assert missing.returncode == 1 and "No user named" in missing.stderr


def test_rotating_the_admin_password_revokes_the_admin_tokens(redis_server: RedisServer) -> None:
    redis_server.start()
    env = _env(redis_server, f"rotation-{uuid.uuid4().hex[:8]}:")
    with ServerProcess(env=env) as server:
        token = bearer(login(server.url))
    with ServerProcess(env=env) as server:  # the same password: a restart revokes nothing
        assert me(server, token).status_code == 200
    rotated = "a-rotated-admin-password"
    with ServerProcess(env={**env, "ADMIN_PASSWORD": rotated}) as server:
        assert_problem(me(server, token), 401, "token_revoked")
        assert me(server, bearer(login(server.url, password=rotated))).status_code == 200
        old = httpx.post(
            f"{server.url}/v1/auth/token",
            data={"username": "admin", "password": "admin-test-password"},
        )
        assert_problem(old, 401, "invalid_credentials")


def test_with_redis_down_known_revocations_hold_and_the_rest_is_on_purpose() -> None:
    redis = RedisServer()
    redis.start()
    env = _env(redis, "outage:", USER_CHECK_TTL_SECONDS="0")  # re-read on every request
    try:
        with (
            ServerProcess(env=env) as fail_open,
            ServerProcess(env={**env, "USER_CHECK_FAIL_OPEN": "false"}) as fail_closed,
        ):
            admin = bearer(login(fail_open.url))
            httpx.post(
                f"{fail_open.url}/v1/auth/users",
                json={"username": "mallory", "password": PASSWORD, "scopes": ["agents:run"]},
                headers=admin,
            ).raise_for_status()
            mallory = bearer(login(fail_open.url, username="mallory", password=PASSWORD))
            for server in (fail_open, fail_closed):
                assert me(server, mallory).status_code == 200
                assert me(server, admin).status_code == 200
            httpx.post(
                f"{fail_open.url}/v1/auth/users/mallory/disable", headers=admin
            ).raise_for_status()
            for server in (fail_open, fail_closed):
                assert_problem(me(server, mallory), 401, "token_revoked")

            redis.stop()
            for server in (fail_open, fail_closed):
                # What a process knows still refuses, however often it is asked.
                for _ in range(5):
                    assert_problem(me(server, mallory), 401, "token_revoked")
            started = time.monotonic()
            for _ in range(10):
                assert me(fail_open, admin).status_code == 200  # fail open: signature and exp
                assert_problem(me(fail_closed, admin), 503, "dependency_unavailable")
            assert time.monotonic() - started < 5  # a breaker, not 20 timeouts

            redis.start()
            # The restarted Redis is empty (tests run it without persistence): a check that
            # reads the store again finds no such user, instead of answering 503.
            deadline = time.monotonic() + 10
            while (response := me(fail_closed, admin)).status_code == 503:
                assert time.monotonic() < deadline, "the check did not recover with Redis"
                time.sleep(0.1)
            assert "no longer exists" in assert_problem(response, 401, "token_revoked")["detail"]
    finally:
        redis.close()
