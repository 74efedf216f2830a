"""Settings of the run model: the run log, its retention, and how a busy session is waited
for. A group of its own, mixed into Settings (app/core/config.py) like the limits group."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RunSettings(BaseModel):
    # --- Runs and tasks: records and event logs (app/store/run_store.py) ---------------------
    RUN_LOG_ENABLED: bool = Field(
        True,
        description="Keep a record and a resumable event log of every foreground run "
        "(GET /v1/runs/{id}, /events). Off: foreground runs keep neither (background tasks "
        "always do).",
    )
    RUN_RETENTION_SECONDS: int = Field(
        3_600,
        ge=60,
        description="How long a foreground run's record and event log are kept after its last "
        "write. Redis holds about (record + events) x runs per second x this: size it.",
    )
    TASK_RETENTION_SECONDS: int = Field(
        7 * 86_400,
        ge=60,
        description="How long task records, events and results are kept.",
    )
    MEMORY_FINISHED_RUNS_MAX: int = Field(
        10_000,
        ge=100,
        description="Without Redis (one process): at most this many finished foreground runs, "
        "and as many finished tasks, are kept in memory; beyond it the oldest are dropped "
        "before their retention ends (an hour of runs under load would be gigabytes).",
    )
    TASK_EVENTS_MAX: int = Field(
        10_000, ge=100, description="Events kept per run or task (older ones are trimmed)."
    )
    SESSION_BUSY_WAIT_SECONDS: float = Field(
        30.0,
        ge=0,
        description='How long a run with `if_busy` "enqueue", "interrupt" or "rollback" waits '
        "for its session before 409 session_busy.",
    )
