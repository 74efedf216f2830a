"""gunicorn settings for production: `gunicorn -c docker/gunicorn.conf.py app.entrypoints.asgi:app`.

Every value comes from the environment (the same names as Settings where one exists), so the
Helm chart and compose file only set env vars; a `.env` in the working directory may set them
too, as it may every setting (the real environment wins). Timeouts are ordered so streams drain:
uvicorn's timeout_graceful_shutdown (graceful_timeout - 3) < graceful_timeout <
terminationGracePeriodSeconds - preStop sleep.
"""

import os
import shutil
import sys

from app.core.gunicorn_env import GUNICORN_ENV, export_dotenv_defaults
from app.core.settings_loader import ConfigError, load_settings
from app.observability.logging import logging_config_dict

# Before anything reads them: gunicorn's own variables and the Settings fields this file
# takes from os.environ directly (Settings reads .env itself).
export_dotenv_defaults(GUNICORN_ENV | {"HOST", "WORKERS", "PROMETHEUS_MULTIPROC_DIR"})

try:
    _settings = load_settings()
except ConfigError as exc:  # a clear message, not a traceback
    raise SystemExit(str(exc)) from None

bind = os.environ.get("GUNICORN_BIND", f"{os.environ.get('HOST', '0.0.0.0')}:{_settings.PORT}")
workers = int(os.environ.get("WORKERS", os.environ.get("WEB_CONCURRENCY", _settings.WORKERS)))
worker_class = "app.entrypoints.gunicorn_worker.AgentServiceWorker"
if workers > 1 and not _settings.REDIS_URL:
    # Each process would have its own in-memory users, sessions, tasks and rate limits.
    sys.stderr.write(
        f"warning: WORKERS={workers} without REDIS_URL: state is per process; "
        "set REDIS_URL or WORKERS=1\n"
    )
# Above the proxy's upstream keep-alive (nginx: 60 s), so the proxy closes idle connections
# first and never sends a request on a socket we are closing.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))  # recycling leaves metric files
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Request limits. gunicorn's own apply only to its HTTP parser, which the uvicorn worker does
# not use: the worker enforces the same settings itself (app/entrypoints/http_protocol.py,
# with head/body timeouts, ws_max_size and limit_concurrency); these keep them aligned should
# the worker class ever change. What no worker can enforce: docs/deployment.md.
limit_request_line = min(8190, _settings.SERVER_MAX_HEADER_BYTES)  # gunicorn's maximum
limit_request_fields = _settings.SERVER_MAX_HEADERS
limit_request_field_size = _settings.SERVER_MAX_HEADER_BYTES
forwarded_allow_ips = _settings.FORWARDED_ALLOW_IPS
proxy_allow_ips = _settings.FORWARDED_ALLOW_IPS
accesslog = None  # requests are logged by our access-log middleware
errorlog = "-"
loglevel = _settings.LOG_LEVEL.lower()
logconfig_dict = logging_config_dict(_settings)
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
# gunicorn >= 25 opens a control socket under $HOME; a read-only root cannot hold it.
control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its own files, a scrape merges them. The
# variable must be set before any worker imports prometheus_client.
if _settings.ENABLE_METRICS and workers > 1:
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/agent-service-metrics")  # noqa: S108


def on_starting(server):  # type: ignore[no-untyped-def]
    """Start with an empty metrics dir: files of a previous run would be summed in."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    # Guarded: unguarded, this raises when the variable is unset and kills the master.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
