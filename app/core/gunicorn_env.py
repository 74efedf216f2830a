"""The variables docker/gunicorn.conf.py reads that are not Settings fields, named once.

Settings lets exactly these through in `.env` (extra="forbid" still refuses any other unknown
name, so a typo fails at start-up), and gunicorn.conf.py takes them from the same `.env`
when the real environment does not set them: one file configures the service and gunicorn.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from dotenv import dotenv_values

GUNICORN_ENV: frozenset[str] = frozenset(
    {
        "GUNICORN_BIND",
        "WEB_CONCURRENCY",
        "GUNICORN_KEEPALIVE",
        "GUNICORN_TIMEOUT",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "GUNICORN_MAX_REQUESTS",
        "GUNICORN_MAX_REQUESTS_JITTER",
        "GUNICORN_WORKER_TMP_DIR",
    }
)


def export_dotenv_defaults(names: Iterable[str], env_file: str = ".env") -> None:
    """Copy `names` from `env_file` into os.environ where the environment lacks them.

    Exported rather than only read, so forked workers see them too (prometheus_client reads
    PROMETHEUS_MULTIPROC_DIR from the environment). The file is parsed as Settings parses it.
    """
    values = dotenv_values(env_file, encoding="utf-8")
    for name in names:
        value = values.get(name)
        if value is not None and name not in os.environ:
            os.environ[name] = value
