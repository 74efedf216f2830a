"""`agent-service api-keys ...` against the Redis a running service uses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import httpx

from tests.support.redis_server import RedisServer
from tests.support.server_process import ROOT, ServerProcess


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.entrypoints.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_creates_lists_and_revokes_keys_the_service_accepts(redis_server: RedisServer) -> None:
    redis_server.start()
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": "e2e-cli:"}
    created = _cli(
        "api-keys",
        "create",
        "--name",
        "deploy-bot",
        "--scopes",
        "agents:run",
        "tasks:read",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    assert record["created_by"] == "cli"
    with ServerProcess(env=env) as server:
        me = httpx.get(f"{server.url}/v1/auth/me", headers={"X-API-Key": record["key"]})
        assert me.status_code == 200
        assert me.json()["id"] == f"key:{record['id']}"
        assert me.json()["scopes"] == ["agents:run", "tasks:read"]
        listed = _cli("api-keys", "list", env=env)
        assert record["key"] not in listed.stdout
        assert record["prefix"] in listed.stdout
        assert _cli("api-keys", "revoke", record["id"], env=env).returncode == 0
        after = httpx.get(f"{server.url}/v1/auth/me", headers={"X-API-Key": record["key"]})
        assert after.status_code == 401


def test_cli_refuses_bad_scopes_and_missing_redis(redis_server: RedisServer) -> None:
    bad = _cli(
        "api-keys", "create", "--name", "x", "--scopes", "root", env={"REDIS_URL": redis_server.url}
    )
    assert bad.returncode == 2 and "unknown scopes" in bad.stderr
    no_redis = _cli("api-keys", "create", "--name", "x", "--scopes", "admin", env={"REDIS_URL": ""})
    assert no_redis.returncode == 2 and "REDIS_URL" in no_redis.stderr


def test_production_with_unsafe_settings_refuses_to_start_with_a_clear_message() -> None:
    result = _cli("serve", "--port", "1", env={"ENVIRONMENT": "production", "SECRET_KEY": "short"})
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert "short" not in result.stderr.replace("SECRET_KEY", "")  # the value is not echoed


def test_a_busy_port_fails_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"ENVIRONMENT": "development", "ADMIN_PASSWORD": "", "LOG_FORMAT": "json"}
        result = _cli("serve", "--host", "127.0.0.1", "--port", str(port), env=env)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    # Nothing claims to have started: no generated password, no start-up line.
    assert "Development admin" not in result.stderr
    assert '"startup"' not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_the_start_up_line_says_what_is_served() -> None:
    with ServerProcess() as server:
        lines = server.json_lines()
    startup = next(line for line in lines if line.get("event") == "startup")
    assert {"chat", "assistant", "approval"} <= set(startup["agents"])
    assert {"calculator", "current_time"} <= set(startup["tools"])
    assert startup["llm_provider"] == "offline"
    assert startup["llm_settings"]["latency_ms"] == 20
    assert startup["llm_settings"]["tokens_per_second"] == 200.0  # a rate, not a credential
    assert startup["storage"] == "memory"
    assert startup["worker"].startswith("embedded")


def test_the_start_up_line_names_redis_without_its_password() -> None:
    from app.core.urls import without_credentials

    redis_url = "redis://:hunter2@cache.internal:6380/2"
    assert without_credentials(redis_url) == "redis://cache.internal:6380/2"
    assert without_credentials("rediss://user:pw@h/0?password=x") == "rediss://h/0"


def test_the_start_up_line_names_the_llm_url_but_never_its_key() -> None:
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": "http://user:pw@127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-never-logged",
    }
    with ServerProcess(env=env) as server:
        logs = server.logs()
    startup = next(
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and '"startup"' in line
    )
    assert startup["llm_provider"] == "openai"
    assert startup["llm_settings"]["base_url"] == "http://127.0.0.1:9/v1"
    assert "sk-never-logged" not in logs and "pw@" not in logs
