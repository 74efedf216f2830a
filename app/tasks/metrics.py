"""Background task metrics (exposed by the API's and the worker's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS_SUBMITTED = Counter("tasks_submitted_total", "Tasks accepted by POST /v1/tasks.")
TASKS_FINISHED = Counter("tasks_finished_total", "Tasks that ended, by status.", ["status"])
TASKS_RUNNING = Gauge(
    "tasks_running", "Tasks running in this process.", multiprocess_mode="livesum"
)
TASKS_PARKED = Gauge(
    "tasks_parked",
    "Tasks in this process waiting for input or a resume (not using a worker slot).",
    multiprocess_mode="livesum",
)
QUEUE_DEPTH = Gauge(
    "task_queue_depth", "Tasks queued or in progress (last reading).", multiprocess_mode="max"
)
TASK_DURATION = Histogram(
    "task_duration_seconds",
    "From start of the last attempt to the end.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
DISPATCH_LATENCY = Histogram(
    "task_dispatch_latency_seconds",
    "From submission to the start of the first attempt.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
REDELIVERIES = Counter("task_redeliveries_total", "Deliveries after the first (worker lost).")
