"""Agent run metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter("agent_runs_total", "Agent runs by agent and final status.", ["agent", "status"])
RUN_DURATION = Histogram(
    "agent_run_duration_seconds",
    "Agent run duration by agent.",
    ["agent"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TIME_TO_FIRST_TOKEN = Histogram(
    "agent_time_to_first_token_seconds",
    "Time from run start to the first token event.",
    ["agent"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RUN_TOKENS = Counter("agent_run_tokens_total", "Tokens used by agent runs.", ["agent", "kind"])
ACTIVE_RUNS = Gauge(
    "agent_active_runs", "Agent runs in progress.", ["agent"], multiprocess_mode="livesum"
)
ACTIVE_STREAMS = Gauge(
    "http_active_streams",
    "Open SSE and WebSocket streams.",
    ["transport"],
    multiprocess_mode="livesum",
)
RUN_LOG_WRITE_FAILURES = Counter(
    "agent_run_log_write_failures_total",
    "Run events that could not be written to the run log (the store was unavailable).",
)
RUN_READERS_BEHIND = Counter(
    "agent_run_readers_behind_total",
    "Times a run's reader fell out of the in-process buffer and read from the log instead.",
)
BUDGET_REJECTIONS = Counter(
    "budget_rejections_total",
    "Runs refused (429 budget_exhausted) or stopped (budget_exceeded) by a token budget.",
    ["window"],
)
BUDGET_CHECK_FAILURES = Counter(
    "budget_checks_failed_total",
    "Budget checks skipped because the usage ledger could not be read (Redis down).",
)
USAGE_WRITE_FAILURES = Counter(
    "usage_ledger_write_failures_total",
    "Usage ledger writes that failed (their calls' usage is missing from GET /v1/usage).",
)
