"""Protocol surfaces: other clients' dialects (OpenAI's API, AG-UI, A2A, MCP) as thin layers
over the same runs, behind the same middleware (auth, rate limits, metrics, logs).

Each surface is a package with one ``mount(app, settings, routes)`` that includes its routes
(recording them in the RouteTable, so metrics and limits see their templates) and returns the
context managers its lifespan needs (an MCP session manager), entered after the services
start. ``mount_protocols`` is called by create_app after the native routes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from app.core.config import Settings
from app.core.routing import RouteTable

Lifespan = Callable[[], AbstractAsyncContextManager[None]]
Mount = Callable[[FastAPI, Settings, RouteTable], list[Lifespan]]


def _mounts(settings: Settings) -> list[Mount]:
    # Imported here: a surface that is off costs no import.
    mounts: list[Mount] = []
    if settings.PROTOCOL_OPENAI_ENABLED:
        from app.protocols.openai import mount as openai_mount

        mounts.append(openai_mount)
    if settings.PROTOCOL_AGUI_ENABLED:
        from app.protocols.agui import mount as agui_mount

        mounts.append(agui_mount)
    if settings.PROTOCOL_A2A_ENABLED:
        from app.protocols.a2a import mount as a2a_mount

        mounts.append(a2a_mount)
    if settings.PROTOCOL_MCP_ENABLED:
        from app.protocols.mcp import mount as mcp_mount

        mounts.append(mcp_mount)
    return mounts


def mount_protocols(app: FastAPI, settings: Settings, *, routes: RouteTable) -> list[Lifespan]:
    """Mount every enabled surface; returns the lifespans they need."""
    lifespans: list[Lifespan] = []
    for mount in _mounts(settings):
        lifespans.extend(mount(app, settings, routes))
    return lifespans
