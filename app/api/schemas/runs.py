"""Bodies of the run routes: a run's record as clients read it (GET /v1/runs/...)."""

from __future__ import annotations

from pydantic import BaseModel

from app.store.run_view import RunInfo

__all__ = ["RunInfo", "RunList"]


class RunList(BaseModel):
    items: list[RunInfo]
    total: int
    limit: int
    offset: int
