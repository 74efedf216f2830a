"""AG-UI over our agents (https://docs.ag-ui.com, protocol 1.0): POST a RunAgentInput to
/v1/agents/{agent}/ag-ui and read AG-UI events back as SSE; reconnect to a run's stream with
GET /v1/agents/{agent}/ag-ui/runs/{run_id}. The thread is our session, the run ours; the
mapping lives in input_mapping.py (what comes in), event_mapping.py (what goes out),
resume.py (interrupts) and stream.py (frames, replay)."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings
from app.core.routing import RouteTable
from app.protocols import Lifespan
from app.protocols.agui.routes import router


def mount(app: FastAPI, settings: Settings, routes: RouteTable) -> list[Lifespan]:
    app.include_router(router, prefix=settings.API_PREFIX)
    routes.add_router(router, prefix=settings.API_PREFIX)
    return []
