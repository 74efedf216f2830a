"""The ASGI application for servers: ``gunicorn ... app.entrypoints.asgi:app``.

Only servers import this module; it builds the app once from the environment. The CLI's
``serve`` builds its own app from the Settings it already loaded, so nothing is read twice.
"""

from __future__ import annotations

from app.main import create_app

app = create_app()
