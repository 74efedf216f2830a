"""Agent run metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from app.core.tenancy import tenant_of
from app.llm.types import Usage
from app.observability.metrics import labelled

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

USAGE_TOKENS = Counter(
    "usage_tokens_total",
    "Model tokens recorded in the usage ledger, by tenant (the first MAX_TENANT_LABELS seen "
    "by a process, then 'other') and agent; cached answers apart (cached=true, not billable).",
    ["tenant", "agent", "kind", "cached"],
)
MAX_TENANT_LABELS = 100
_tenant_labels: set[str] = set()


def tenant_label(principal_id: str) -> str:
    """A bounded label: tenants are made by operators, but a process never exports more than
    MAX_TENANT_LABELS of them."""
    tenant = tenant_of(principal_id)
    if tenant in _tenant_labels:
        return tenant
    if len(_tenant_labels) < MAX_TENANT_LABELS:
        _tenant_labels.add(tenant)
        return tenant
    return "other"


def count_usage(principal_id: str, agent: str, usage: Usage, cached: bool) -> None:
    labels = (tenant_label(principal_id), agent)
    flag = "true" if cached else "false"
    if usage.prompt_tokens:
        labelled(USAGE_TOKENS, *labels, "prompt", flag).inc(usage.prompt_tokens)
    if usage.completion_tokens:
        labelled(USAGE_TOKENS, *labels, "completion", flag).inc(usage.completion_tokens)
