"""`agent-service tenants ...` (and `users create` / `api-keys create --tenant`) against the
Redis a running service uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.redis_server import RedisServer
from tests.support.server_process import ROOT, ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery"


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


def _ok(*args: str, env: dict[str, str], stdin: str = "") -> dict[str, object]:
    done = _cli(*args, env=env, stdin=stdin)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _env(redis_server: RedisServer) -> dict[str, str]:
    redis_server.start()
    return {
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"e2e-tenants-{uuid.uuid4().hex[:8]}:",
        "BCRYPT_ROUNDS": "4",
    }


def _refused(
    done: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> subprocess.CompletedProcess[str]:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr
    return done


def test_create_list_get_update_clear_delete(redis_server: RedisServer) -> None:
    env = _env(redis_server)
    created = _ok(
        "tenants",
        "create",
        "acme",
        "--name",
        "Acme Corp",
        "--rate-limit",
        "600/minute",
        "--max-concurrent-runs",
        "2",
        "--max-active-tasks",
        "5",
        "--budget-tokens-per-run",
        "1000",
        "--budget-tokens-per-day",
        "0",
        "--budget-tokens-per-month",
        "90000",
        "--budget-usd-per-day",
        "2.5",
        "--pool-tokens-per-month",
        "5000000",
        "--allowed-agents",
        "chat, assistant",
        env=env,
    )
    assert created["id"] == "acme" and created["name"] == "Acme Corp"
    assert created["policy"] == {
        "rate_limit": "600/minute",
        "max_concurrent_runs": 2,
        "max_active_tasks": 5,
        "budget_tokens_per_run": 1000,
        "budget_tokens_per_day": 0,
        "budget_tokens_per_month": 90000,
        "budget_usd_per_day": 2.5,
        "budget_usd_per_month": None,
        "pool_tokens_per_day": None,
        "pool_tokens_per_month": 5000000,
        "allowed_agents": ["chat", "assistant"],
    }
    _ok("tenants", "create", "globex", "--name", "Globex", env=env)

    listed = json.loads(_cli("tenants", "list", env=env).stdout)
    assert [tenant["id"] for tenant in listed] == ["acme", "globex"]
    assert listed[1]["policy"]["rate_limit"] is None
    assert _ok("tenants", "get", "acme", env=env) == created

    updated = _ok(
        "tenants",
        "update",
        "acme",
        "--name",
        "Acme Inc",
        "--max-concurrent-runs",
        "4",
        "--clear",
        "rate-limit",
        "--clear",
        "allowed_agents",
        env=env,
    )
    assert updated["name"] == "Acme Inc"
    policy = updated["policy"]
    assert isinstance(policy, dict)
    assert policy["max_concurrent_runs"] == 4
    assert policy["rate_limit"] is None and policy["allowed_agents"] is None
    assert policy["max_active_tasks"] == 5 and policy["budget_tokens_per_month"] == 90000
    assert str(updated["updated_at"]) > str(created["updated_at"])
    assert updated["created_at"] == created["created_at"]
    assert _ok("tenants", "get", "acme", env=env) == updated

    deleted = _ok("tenants", "delete", "acme", env=env)
    assert deleted == updated
    _refused(_cli("tenants", "get", "acme", env=env), 1, "error: tenant_not_found:", "'acme'")
    listed = json.loads(_cli("tenants", "list", env=env).stdout)
    assert [tenant["id"] for tenant in listed] == ["globex"]


# (arguments, exit code, what stderr says): against a store holding the tenant "acme".
REFUSED: list[tuple[tuple[str, ...], int, str]] = [
    (("create", "acme", "--name", "Again"), 1, "error: tenant_exists: A tenant 'acme' exists."),
    *(
        (("create", "--name", "Bad", "--", bad_id), 1, "error: invalid_tenant_id: id: 1-32")
        for bad_id in ("Acme", "a/b", "-acme", "x" * 33)
    ),
    (("create", "default", "--name", "Mine"), 1, "error: invalid_tenant_id:"),
    (("update", "default", "--name", "Mine"), 1, "error: tenant_default:"),
    (("delete", "default"), 1, "error: tenant_default: The default tenant cannot be deleted."),
    (
        ("create", "initech", "--name", "I", "--rate-limit", "lots"),
        1,
        "error: validation_error: --rate-limit: not a rate limit: write e.g. '600/minute'",
    ),
    (("update", "acme", "--rate-limit", "1/fortnight"), 1, "validation_error: --rate-limit:"),
    (("update", "acme", "--max-active-tasks", "-1"), 1, "validation_error: --max-active-tasks:"),
    (("create", "initech", "--name", ""), 1, "error: validation_error: --name:"),
    (
        ("create", "initech", "--name", "I", "--allowed-agents", "chat,nope"),
        1,
        "error: unknown_agent: No agent named 'nope' is served here.",
    ),
    (("update", "nobody", "--name", "N"), 1, "error: tenant_not_found: No tenant 'nobody'."),
    (("delete", "nobody"), 1, "error: tenant_not_found: No tenant 'nobody'."),
    (("update", "acme"), 2, "nothing to change"),
    (("update", "acme", "--rate-limit", "5/second", "--clear", "rate-limit"), 2, "contradict"),
]


def test_errors_are_one_line_with_the_code_and_exit_non_zero(redis_server: RedisServer) -> None:
    env = _env(redis_server)
    _ok("tenants", "create", "acme", "--name", "Acme", env=env)
    # Each a process of its own, and none changes anything: run side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda case: _cli("tenants", *case[0], env=env), REFUSED))
    for (args, code, message), result in zip(REFUSED, done, strict=True):
        assert result.returncode == code, (args, result.stdout, result.stderr)
        _refused(result, code, message)
    bad_clear = _cli("tenants", "update", "acme", "--clear", "name", env=env)
    assert bad_clear.returncode == 2 and "invalid choice" in bad_clear.stderr
    # Nothing above changed the tenant, and nothing else was made.
    listed = json.loads(_cli("tenants", "list", env=env).stdout)
    assert [(tenant["id"], tenant["name"]) for tenant in listed] == [("acme", "Acme")]
    no_redis = _cli("tenants", "list", env={"REDIS_URL": ""})
    assert no_redis.returncode == 2 and "REDIS_URL" in no_redis.stderr


def test_a_tenant_user_and_key_made_by_the_cli_sign_in(redis_server: RedisServer) -> None:
    env = _env(redis_server)
    _ok("tenants", "create", "acme", "--name", "Acme", env=env)
    user = _ok(
        "users",
        "create",
        "alice",
        "--tenant",
        "acme",
        "--scopes",
        "agents:run",
        env=env,
        stdin=PASSWORD,
    )
    assert user["username"] == "acme/alice"
    key = _ok(
        "api-keys",
        "create",
        "--name",
        "acme-bot",
        "--tenant",
        "acme",
        "--scopes",
        "agents:run",
        env=env,
    )
    assert key["tenant"] == "acme"
    # A tenant that does not exist, and admin outside the default tenant, are refused.
    for args in (
        ("users", "create", "bob", "--tenant", "nobody", "--scopes", "agents:run"),
        ("api-keys", "create", "--name", "x", "--tenant", "nobody", "--scopes", "agents:run"),
    ):
        _refused(_cli(*args, env=env, stdin=PASSWORD), 1, "No tenant 'nobody'.")
    _refused(
        _cli(
            "users",
            "create",
            "carol",
            "--tenant",
            "acme",
            "--scopes",
            "admin",
            env=env,
            stdin=PASSWORD,
        ),
        1,
        "cannot hold 'admin'",
    )
    with ServerProcess(env=env) as server:
        signed_in = httpx.post(
            f"{server.url}/v1/auth/token",
            data={"username": "acme/alice", "password": PASSWORD},
            timeout=10,
        )
        assert signed_in.status_code == 200, signed_in.text
        token = signed_in.json()["access_token"]
        me = httpx.get(f"{server.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["id"] == "user:acme/alice" and me.json()["tenant"] == "acme"
        by_key = httpx.get(f"{server.url}/v1/auth/me", headers={"X-API-Key": str(key["key"])})
        assert by_key.status_code == 200
        assert by_key.json()["id"] == f"key:acme/{key['id']}"
        assert by_key.json()["tenant"] == "acme"
        # Deleting the tenant from the CLI refuses its principals on the running service.
        _ok("tenants", "delete", "acme", env=env)
        after = httpx.get(f"{server.url}/v1/auth/me", headers={"X-API-Key": str(key["key"])})
        assert after.status_code == 401
