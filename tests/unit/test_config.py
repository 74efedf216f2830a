"""Settings: parsing, and the production guards that refuse unsafe values."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import DEV_SECRET_KEY, Settings
from app.core.settings_loader import ConfigError, load_settings

STRONG = "9f2c1e7a4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d"


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults_run_out_of_the_box_in_development() -> None:
    settings = make()
    assert settings.ENVIRONMENT == "development"
    assert settings.REDIS_URL is None
    assert settings.API_PREFIX == "/v1"
    assert settings.default_rate_limit.amount == 120


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY"),
        ({"SECRET_KEY": "short-but-not-default"}, "SECRET_KEY"),
        ({"SECRET_KEY": STRONG, "AUTH_ENABLED": "false"}, "AUTH_ENABLED"),
        (
            {"SECRET_KEY": STRONG, "CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"},
            "CORS_ORIGINS",
        ),
    ],
)
def test_production_refuses_unsafe_settings_naming_the_setting(
    values: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert named in message
    # The message never echoes a secret value.
    assert STRONG not in message and DEV_SECRET_KEY not in message


def test_production_accepts_safe_settings() -> None:
    settings = make(ENVIRONMENT="production", SECRET_KEY=STRONG, CORS_ORIGINS=["https://a.b"])
    assert settings.is_production


def test_list_and_json_settings_parse_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("RATE_LIMIT_ROUTES", '{"GET /v1/agents": "5/second"}')
    settings = load_settings(_env_file=None)
    assert settings.CORS_ORIGINS == ["https://a.example", "https://b.example"]
    assert settings.route_rate_limits["GET /v1/agents"].amount == 5


@pytest.mark.parametrize("routes", ['{"/v1/agents": "5/second"}', '{"GET /v1/agents": "lots"}'])
def test_bad_route_limits_are_refused(monkeypatch: pytest.MonkeyPatch, routes: str) -> None:
    monkeypatch.setenv("RATE_LIMIT_ROUTES", routes)
    with pytest.raises(ConfigError, match="RATE_LIMIT_ROUTES"):
        load_settings(_env_file=None)


def test_unknown_settings_in_env_file_are_refused(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RATE_LIMT_REQUESTS=5\n")  # typo must not be silently ignored
    with pytest.raises(ConfigError, match="RATE_LIMT_REQUESTS"):
        load_settings(_env_file=str(env_file))


def test_env_example_lists_every_setting() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    names = {
        line.split("=", 1)[0].lstrip("# ").strip() for line in text.splitlines() if "=" in line
    }
    missing = set(Settings.model_fields) - names
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_readme_configuration_table_lists_every_setting() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"| `{name}` |" not in readme]
    assert not missing, f"README configuration table lacks {missing}"


# --- .env shared with docker/gunicorn.conf.py ----------------------------------------------------

GUNICORN_LINES = (
    "GUNICORN_BIND=127.0.0.1:9001",
    "WEB_CONCURRENCY=2",
    "GUNICORN_KEEPALIVE=5",
    "GUNICORN_TIMEOUT=90",
    "GUNICORN_GRACEFUL_TIMEOUT=20",
    "GUNICORN_MAX_REQUESTS=0",
    "GUNICORN_MAX_REQUESTS_JITTER=0",
    "GUNICORN_WORKER_TMP_DIR=/dev/shm",
)


def test_env_file_may_hold_the_gunicorn_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's promise: every documented variable may be a line in .env.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("\n".join(("PORT=9001", *GUNICORN_LINES)) + "\n")
    settings = load_settings()
    assert settings.PORT == 9001  # the same file still configures the service


@pytest.mark.parametrize("typo", ["GUNICORN_KEEPALIV", "SECRT_KEY", "gunicorn_keepalive"])
def test_env_file_still_refuses_a_misspelt_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typo: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"GUNICORN_KEEPALIVE=5\n{typo}=5\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.splitlines()[0] == "invalid configuration:"
    assert f"{typo}: Extra inputs are not permitted" in message
    assert "GUNICORN_KEEPALIVE:" not in message  # only the misspelt line is named
