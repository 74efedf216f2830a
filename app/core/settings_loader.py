"""Build Settings with an error message that names the setting and never echoes values.

pydantic's default message prints the whole input dict, which would put SECRET_KEY in a
crash log; ``include_input=False`` keeps it out.
"""

from __future__ import annotations

from pydantic import ValidationError

from app.core.config import Settings


class ConfigError(RuntimeError):
    """Settings are invalid; the message is safe to print."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            lines.append(f"  {where}: {error['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
