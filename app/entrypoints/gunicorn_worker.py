"""The gunicorn worker class: uvicorn-worker with graceful shutdown and our logging.

gunicorn does not pass ``graceful_timeout`` to uvicorn (docs/decisions.md): without this, a SIGTERM
with an open stream gets the worker hard-killed and its ``finally`` blocks never run. uvicorn
must give up first, so it gets the grace period less a margin for the lifespan shutdown.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker

from app.core.settings_loader import load_settings
from app.entrypoints.server import DrainingServer, transport_options

SHUTDOWN_MARGIN_SECONDS = 3


class AgentServiceWorker(UvicornWorker):  # type: ignore[misc]
    # uvicorn's access log prints query strings (a WebSocket ?token=): we log requests in
    # our own middleware instead.
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "auto",
        "http": "auto",
        "access_log": False,
        "lifespan": "on",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parent points uvicorn's loggers at gunicorn's handlers; send them through the
        # root (structlog) handler like everything else.
        error_log = logging.getLogger("uvicorn.error")
        error_log.handlers = []
        error_log.propagate = True
        logging.getLogger("uvicorn.access").disabled = True
        grace = int(self.cfg.graceful_timeout)
        self.config.timeout_graceful_shutdown = max(1, grace - SHUTDOWN_MARGIN_SECONDS)
        # The same request limits, ws_max_size and limit_concurrency as `serve` (gunicorn's
        # limit_request_* settings do not reach uvicorn's parser). Read before config.load().
        for name, value in transport_options(load_settings()).items():
            setattr(self.config, name, value)

    async def _serve(self) -> None:
        # As the parent's, but with a server that tells open streams about the shutdown.
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
