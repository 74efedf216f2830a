"""Finding 12: the development signing key was a public constant.

Attacks: sign an admin token with the constant from the source and use it on a development
server; use a token of one process on another that shares nothing with it. And what must
keep working: processes sharing a Redis (replicas, gunicorn workers, the CLI) agree on one
generated key; production still refuses to start without SECRET_KEY.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import httpx
from jose import jwt
from redis import Redis

from tests.security.conftest import bearer, login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ROOT, ServerProcess

# The constant earlier versions signed development tokens with (app/core/config.py).
PUBLIC_DEV_KEY = "dev-insecure-secret-key-change-me-before-production"  # noqa: S105


def _without_secret(
    env: dict[str, str] | None = None, *, gunicorn: bool = False, workers: int = 2
) -> ServerProcess:
    server = ServerProcess(env=env, gunicorn=gunicorn, workers=workers)
    server.env.pop("SECRET_KEY", None)  # whatever the shell running the tests has set
    server.env.pop("API_KEY_PEPPER", None)
    return server


def _forged_admin_token() -> str:
    now = int(time.time())
    claims = {
        "sub": "user:admin",
        "scope": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    return str(jwt.encode(claims, PUBLIC_DEV_KEY, algorithm="HS256"))


def _problem_code(response: httpx.Response) -> str:
    return str(response.json()["code"])


def test_a_token_signed_with_the_public_dev_key_is_refused() -> None:
    with _without_secret() as server:
        forged = httpx.get(f"{server.url}/v1/auth/me", headers=bearer(_forged_admin_token()))
        assert forged.status_code == 401, forged.text
        assert _problem_code(forged) == "token_invalid"
        minted = httpx.post(
            f"{server.url}/v1/auth/api-keys",
            json={"name": "backdoor", "scopes": ["admin"]},
            headers=bearer(_forged_admin_token()),
        )
        assert minted.status_code == 401
        # The server's own tokens work, and the start-up log says where its key came from.
        assert httpx.get(f"{server.url}/v1/auth/me", headers=bearer(login(server.url))).is_success
        logs = server.logs()
        assert "secret_key_generated" in logs
        assert '"jwt_key_source": "generated-process"' in logs


def test_the_public_dev_key_is_refused_as_a_setting() -> None:
    result = subprocess.run(
        # Any command that loads the settings; this one needs no server.
        [sys.executable, "-m", "app.entrypoints.cli", "api-keys", "list"],
        cwd=ROOT,
        env={**os.environ, "ENVIRONMENT": "development", "SECRET_KEY": PUBLIC_DEV_KEY},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr and "public" in result.stderr
    assert PUBLIC_DEV_KEY not in result.stderr


def test_production_still_requires_a_secret_key() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "API_KEY_PEPPER")}
    result = subprocess.run(
        # Any command that loads the settings; this one needs no server.
        [sys.executable, "-m", "app.entrypoints.cli", "api-keys", "list"],
        cwd=ROOT,
        env={**env, "ENVIRONMENT": "production", "ADMIN_PASSWORD": "x" * 20},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr


def test_without_redis_each_process_has_a_key_of_its_own() -> None:
    with _without_secret() as first, _without_secret() as second:
        token = login(first.url)
        assert httpx.get(f"{first.url}/v1/auth/me", headers=bearer(token)).status_code == 200
        elsewhere = httpx.get(f"{second.url}/v1/auth/me", headers=bearer(token))
        assert elsewhere.status_code == 401
        assert _problem_code(elsewhere) == "token_invalid"


def test_processes_sharing_redis_agree_on_one_generated_key(redis_server: RedisServer) -> None:
    redis_server.start()
    prefix = f"devkey-{uuid.uuid4().hex[:8]}:"
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": prefix}
    cli_env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "API_KEY_PEPPER")}
    with (
        _without_secret(env=env, gunicorn=True, workers=2) as workers,
        _without_secret(env=env) as replica,
    ):
        token = bearer(login(replica.url))
        # Every request to the gunicorn pair lands on one of its two workers: all accept.
        with httpx.Client(base_url=workers.url) as client:
            statuses = {client.get("/v1/auth/me", headers=token).status_code for _ in range(20)}
        assert statuses == {200}
        # The CLI peppers API keys with the same generated key.
        created = subprocess.run(
            [sys.executable, "-m", "app.entrypoints.cli", "api-keys", "create"]
            + ["--name", "ci", "--scopes", "agents:run"],
            cwd=ROOT,
            env={**cli_env, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.split('"key": "')[1].split('"')[0]
        assert httpx.get(f"{workers.url}/v1/auth/me", headers={"X-API-Key": key}).is_success

        with Redis.from_url(redis_server.url, decode_responses=True) as redis:
            stored = redis.get(f"{prefix}auth:generated-secret-key")
        assert isinstance(stored, str) and len(stored) >= 32
        for logs in (workers.logs(), replica.logs()):
            assert "secret_key_generated" in logs and '"shared": true' in logs
            assert stored not in logs  # said, never shown


def test_redis_down_at_start_up_gives_a_process_key_and_says_so() -> None:
    dead = RedisServer()  # a free port nobody listens on
    with _without_secret(env={"REDIS_URL": dead.url}) as server:
        assert httpx.get(f"{server.url}/health/live").status_code == 200
        logs = server.logs()
        assert "secret_key_not_shared" in logs
        assert '"jwt_key_source": "generated-process"' in logs
