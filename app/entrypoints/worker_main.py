"""`agent-service worker`: a process that only runs background tasks.

It serves /metrics on WORKER_METRICS_PORT (Prometheus' own small HTTP server, in a thread),
and on SIGTERM/SIGINT stops taking work, lets running tasks finish within
WORKER_SHUTDOWN_GRACE_SECONDS, releases the rest for redelivery, and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
from prometheus_client import start_http_server

from app.core.config import Settings
from app.core.settings_loader import ConfigError
from app.observability.logging import configure_logging
from app.observability.tracing import configure_tracing, shutdown_tracing
from app.services import build_services

log = structlog.get_logger("app.worker")


async def run_worker(settings: Settings) -> int:
    if not settings.REDIS_URL:
        log.error("worker_needs_redis", hint="set REDIS_URL to the Redis the API uses")
        return 2
    try:
        configure_tracing(settings, role="worker")  # before the services: the LLM client
        services = build_services(settings, run_worker=True)
    except ConfigError as exc:  # a bad AGENTS/TOOLS/LLM_PROVIDER entry: one line, no traceback
        sys.stderr.write(f"{exc}\n")
        return 2
    worker = services.worker
    assert worker is not None  # noqa: S101 - run_worker=True builds one
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.WORKER_METRICS_PORT:
        start_http_server(settings.WORKER_METRICS_PORT, addr="0.0.0.0")  # noqa: S104
    log.info(
        "worker_started",
        consumer=worker.consumer,
        concurrency=settings.WORKER_CONCURRENCY,
        metrics_port=settings.WORKER_METRICS_PORT,
    )
    async with services.running(bootstrap=False):
        await stop.wait()
        log.info("worker_stopping", grace_seconds=settings.WORKER_SHUTDOWN_GRACE_SECONDS)
    await shutdown_tracing()  # the spans of the last tasks, before the process exits
    log.info("worker_stopped")
    return 0


def main(settings: Settings) -> int:
    configure_logging(settings)
    return asyncio.run(run_worker(settings))
