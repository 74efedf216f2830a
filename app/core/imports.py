"""Load a plug-in named ``package.module:attribute`` from a setting (AGENTS, TOOLS, LLM_PROVIDER).

The working directory is put on ``sys.path`` first, as ``uvicorn --app-dir`` does, so a
``mypkg/`` folder in the checkout is importable by ``make run`` without installing it. Any
failure becomes one ``ConfigError`` line that names the setting and the entry, never an
89-line traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from app.core.settings_loader import ConfigError


def ensure_working_directory_importable() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def import_object(entry: str, *, setting: str) -> Any:
    """Return the attribute ``entry`` names; ``setting`` is quoted in the error."""
    module_name, sep, attribute = entry.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{setting}: {entry!r} must look like 'package.module:attribute'")
    ensure_working_directory_importable()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a plug-in's own import error is as much a config error
        raise ConfigError(
            f"{setting}: cannot import {module_name!r} for {entry!r}: "
            f"{type(exc).__name__}: {exc} (working directory: {os.getcwd()})"
        ) from None
    try:
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise ConfigError(
            f"{setting}: module {module_name!r} has no attribute {attribute!r} (from {entry!r})"
        ) from None
    return target
