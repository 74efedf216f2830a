"""Render the settings reference (.env.example, README table) from Settings itself."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from app.core.config import Settings

_SECRET_NOTE = "dev placeholder; production needs a random value (openssl rand -hex 32)"  # noqa: S105


def _default(name: str) -> Any:
    return Settings.model_fields[name].get_default(call_default_factory=True)


def _as_env(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value) if value else ""
    return str(value)


def env_example() -> str:
    lines = [
        "# agent-service settings. Copy to .env and uncomment what you change;",
        "# every line shows the default. Environment variables override this file.",
        "# Regenerate: agent-service settings --format env > .env.example",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = _default(name)
        lines.append(f"# {field.description}")
        if isinstance(default, SecretStr):
            lines.append(f"# {name}=  ({_SECRET_NOTE})")
        else:
            lines.append(f"# {name}={_as_env(default)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    rows = ["| Setting | Default | Description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = _default(name)
        if isinstance(default, SecretStr):
            shown = "dev placeholder (refused in production)"
        else:
            shown = _as_env(default) or "unset"
        rows.append(f"| `{name}` | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"
