"""Render the settings reference (.env.example, README table) from Settings itself.

The built-in LLM providers' variables (app/core/llm_settings.py) follow LLM_PROVIDER.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from app.core.config import Settings
from app.core.llm_settings import documented_fields

_SECRET_NOTE = "dev placeholder; production needs a random value (openssl rand -hex 32)"  # noqa: S105


def _fields() -> Iterator[tuple[str, FieldInfo]]:
    for name, field in Settings.model_fields.items():
        yield name, field
        if name == "LLM_PROVIDER":
            yield from documented_fields()


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


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
    for name, field in _fields():
        default = _default(field)
        lines.append(f"# {field.description}")
        if isinstance(default, SecretStr):
            lines.append(f"# {name}=  ({_SECRET_NOTE})")
        else:
            lines.append(f"# {name}={_as_env(default)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    rows = ["| Setting | Default | Description |", "| --- | --- | --- |"]
    for name, field in _fields():
        default = _default(field)
        if isinstance(default, SecretStr):
            shown = "dev placeholder (refused in production)"
        else:
            shown = _as_env(default) or "unset"
        rows.append(f"| `{name}` | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"
