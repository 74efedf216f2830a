"""Placeholder until the surface lands: mounts nothing."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings
from app.core.routing import RouteTable
from app.protocols import Lifespan


def mount(app: FastAPI, settings: Settings, routes: RouteTable) -> list[Lifespan]:
    return []
