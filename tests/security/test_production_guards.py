"""Finding 11 (and 10's warning): ``ENVIRONMENT=production`` refuses unsafe settings.

The review started production processes with ``SECRET_KEY='a'*32`` or ``'password'*4``,
``API_KEY_PEPPER='x'``, ``ADMIN_PASSWORD='a'``, ``FORWARDED_ALLOW_IPS='*'``, rate limiting
off and docs on: all were accepted. Each guard is exercised the way an operator meets it,
``agent-service serve`` in a subprocess: exit status 2, one line naming the setting and the
rule, no traceback, and never the value (it may be a secret). The settings production only
warns about (docs on, a shared LLM cache) are logged once at start-up with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import httpx
import pytest

from app.core.config import Settings
from tests.support.ports import free_port
from tests.support.server_process import ROOT, ServerProcess

SECRETS = {"SECRET_KEY", "API_KEY_PEPPER", "ADMIN_PASSWORD"}  # never echoed
STRONG_ADMIN_PASSWORD = "correct-horse-battery-staple-9"
SAFE_PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": secrets.token_hex(32),
    "ADMIN_USERNAME": "admin",
    "ADMIN_PASSWORD": STRONG_ADMIN_PASSWORD,
    "FORWARDED_ALLOW_IPS": "10.244.0.0/16",
    "RATE_LIMIT_ENABLED": "true",
    "DOCS_ENABLED": "false",
    "CACHE_SCOPE": "principal",
    "BCRYPT_ROUNDS": "4",
    "LOG_FORMAT": "json",
}
# Long enough to start serving: on code without the guard the process would serve, and the
# test fails on the timeout instead of hanging.
START_TIMEOUT_SECONDS = 20


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`agent-service serve` with exactly these settings (nothing inherited)."""
    inherited = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    return subprocess.run(
        [sys.executable, "-m", "app.entrypoints.cli", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
    )


@pytest.mark.parametrize(
    ("unsafe", "setting", "rule"),
    [
        ({"SECRET_KEY": "a" * 32}, "SECRET_KEY", "different characters"),
        ({"SECRET_KEY": "password" * 4}, "SECRET_KEY", "different characters"),
        ({"SECRET_KEY": "Tr0ub4dor&3x" * 3}, "SECRET_KEY", "repeats a pattern"),
        ({"SECRET_KEY": "Kq7-vX2z"}, "SECRET_KEY", "32 bytes"),
        ({"API_KEY_PEPPER": "pepper-qz"}, "API_KEY_PEPPER", "32 bytes"),
        ({"ADMIN_PASSWORD": "hunter2qz"}, "ADMIN_PASSWORD", "12 characters"),
        (
            {"ADMIN_USERNAME": "operator-on-call", "ADMIN_PASSWORD": "Operator-On-Call"},
            "ADMIN_PASSWORD",
            "user name",
        ),
        ({"FORWARDED_ALLOW_IPS": "*"}, "FORWARDED_ALLOW_IPS", "every address"),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.1, 0.0.0.0/0"}, "FORWARDED_ALLOW_IPS", "every address"),
        ({"RATE_LIMIT_ENABLED": "false"}, "RATE_LIMIT_ENABLED", "password guessing"),
    ],
    ids=[
        "secret-one-char",
        "secret-repeated-word",
        "secret-repeated-phrase",
        "secret-too-few-bytes",
        "pepper-too-few-bytes",
        "admin-password-too-few-chars",
        "admin-password-is-username",
        "every-proxy",
        "every-proxy-as-a-network",
        "rate-limit-off",
    ],
)
def test_production_refuses_to_serve_with_an_unsafe_setting(
    unsafe: dict[str, str], setting: str, rule: str
) -> None:
    result = serve({**SAFE_PRODUCTION, **unsafe})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    [reason] = [line for line in lines if setting in line]
    assert rule in reason, reason
    assert len(lines) == 2, lines  # "invalid configuration:" and the one reason
    if setting in SECRETS:
        for value in unsafe.values():
            assert value not in result.stderr + result.stdout


def startup_warnings(logs: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in logs.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "production_setting_unsafe":
            assert entry.get("level") == "warning", entry
            found[str(entry["setting"])] = str(entry["detail"])
    return found


def test_safe_production_settings_serve_without_a_warning() -> None:
    with ServerProcess(env=SAFE_PRODUCTION) as server:
        assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
        logs = server.logs()
    assert '"event": "startup"' in logs or '"event":"startup"' in logs
    assert startup_warnings(logs) == {}


def test_production_warns_about_a_shared_cache_and_public_docs() -> None:
    env = {**SAFE_PRODUCTION, "CACHE_SCOPE": "global", "DOCS_ENABLED": "true"}
    with ServerProcess(env=env) as server:
        # Warned, not refused: both are legitimate for a single-organisation deployment.
        assert httpx.get(f"{server.url}/docs", timeout=5).status_code == 200
        logs = server.logs()
    warnings = startup_warnings(logs)
    assert set(warnings) == {"CACHE_SCOPE", "DOCS_ENABLED"}
    # The line explains the oracle, so the operator can judge it.
    assert "X-Cache: HIT" in warnings["CACHE_SCOPE"]
    assert "learns what was asked" in warnings["CACHE_SCOPE"]
    assert "CACHE_SCOPE=principal" in warnings["CACHE_SCOPE"]
