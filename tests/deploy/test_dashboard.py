"""The Grafana dashboard: its PromQL uses only metrics the app declares, and has the panels."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.support import DOCKER_DIR, ROOT

DASHBOARDS = sorted((DOCKER_DIR / "grafana/dashboards").glob("*.json"))
MAIN_DASHBOARD = DOCKER_DIR / "grafana/dashboards/agent-service.json"
# Every module of app/ that declares Prometheus metrics.
METRIC_MODULES = (
    "app.observability.metrics",
    "app.agents.metrics",
    "app.llm.metrics",
    "app.tasks.metrics",
    "app.webhooks.metrics",
)
# The series a family of each type exposes (prometheus_client names a counter's family
# without its _total suffix; _created series are left out on purpose: not for dashboards).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}
# PromQL words that look like identifiers but are not metric names.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}


def declared_families() -> dict[str, str]:
    """name -> type of every metric family declared in METRIC_MODULES."""
    families: dict[str, str] = {}
    for module_name in METRIC_MODULES:
        module = importlib.import_module(module_name)
        found = {
            family.name: family.type
            for collector in vars(module).values()
            if isinstance(collector, MetricWrapperBase)
            for family in collector.describe()
        }
        assert found, f"{module_name} declares no metric"
        families.update(found)
    return families


def exposed_series() -> set[str]:
    """Series names the app can expose, checked against what the default registry holds."""
    families = declared_families()
    registered = {family.name for family in REGISTRY.collect()}
    assert set(families) <= registered, set(families) - registered
    return {name + suffix for name, kind in families.items() for suffix in SERIES_SUFFIXES[kind]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values, regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"(?<![\w:])(?:\d+(?:ms|s|m|h|d|w|y))+\b", "", text)  # durations (offset)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", "", text)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_metric_names_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, agent) (rate(agent_run_duration_seconds_bucket{route!~".*/(stream|ws)$"}[$__rate_interval])))'  # noqa: E501
        " / clamp_min(sum(rate(http_requests_total[5m])) without (status), 1e-9)"
        " + on (instance) group_left max(task_queue_depth offset 1h) > bool 0"
    )
    assert metric_names(expr) == {
        "agent_run_duration_seconds_bucket",
        "http_requests_total",
        "task_queue_depth",
    }


def test_metric_modules_are_every_module_that_declares_metrics() -> None:
    declaring = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "app").rglob("*.py")
        if re.search(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*\"", path.read_text())
    }
    assert declaring == set(METRIC_MODULES)


def test_exposed_series_cover_every_metric_module() -> None:
    series = exposed_series()
    for name in (
        "http_requests_total",  # app.observability.metrics
        "http_request_duration_seconds_bucket",
        "agent_runs_total",  # app.agents.metrics
        "llm_cache_requests_total",  # app.llm.metrics
        "task_queue_depth",  # app.tasks.metrics
        "tasks_running",
        "task_dispatch_latency_seconds_count",
    ):
        assert name in series
    assert "task_queue_depth_total" not in series
    assert "http_request_duration_seconds" not in series  # a histogram has no bare series


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboards_use_only_metrics_the_app_declares(path: Path) -> None:
    series = exposed_series()
    used: dict[str, set[str]] = {}
    for title, exprs in dashboard_exprs(load(path)).items():
        names = set().union(*(metric_names(e) for e in exprs))
        assert names, f"panel {title!r} selects no metric"
        used[title] = names
    unknown = {title: names - series for title, names in used.items() if names - series}
    assert not unknown, unknown
    # And each one is spelled out in app/ (a family name, as the code declares it).
    sources = "\n".join(p.read_text() for p in (ROOT / "app").rglob("*.py"))
    families = {
        re.sub(r"_(?:total|bucket|count|sum)$", "", name)
        for names in used.values()
        for name in names
    }
    assert not {f for f in families if f'"{f}' not in sources}


def test_dashboard_has_the_panels_operators_need() -> None:
    exprs = dashboard_exprs(load(MAIN_DASHBOARD))
    wanted = {
        "Request rate": {"http_requests_total"},
        "Latency p50 / p95 / p99": {"http_request_duration_seconds_bucket"},
        "Error rate (5xx)": {"http_requests_total"},
        "Agent runs": {"agent_runs_total"},
        "LLM tokens": {"llm_tokens_total"},
        "LLM cache hit ratio": {"llm_cache_requests_total"},
        "Rate-limit rejections": {"rate_limit_rejections_total"},
        "Task queue depth": {"task_queue_depth"},
        "Task throughput": {
            "tasks_submitted_total",
            "tasks_finished_total",
            "task_redeliveries_total",
        },
        "Tasks running": {"tasks_running"},
        "Task duration p50 / p95": {"task_duration_seconds_bucket"},
        "Task dispatch latency p95 / p99": {"task_dispatch_latency_seconds_bucket"},
    }
    for title, metrics in wanted.items():
        assert title in exprs, title
        used = set().union(*(metric_names(e) for e in exprs[title]))
        assert metrics <= used, (title, used)
    latency = " ".join(exprs["Latency p50 / p95 / p99"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in latency
    assert 'result="hit"' in " ".join(exprs["LLM cache hit ratio"])
    assert "sum by (status)" in " ".join(exprs["Task throughput"])
    # Every process that runs tasks reads the same queue: max, not sum.
    assert exprs["Task queue depth"] == ["max(task_queue_depth)"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_panels_have_unique_ids_and_a_datasource(path: Path) -> None:
    dashboard = load(path)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["type"] == "prometheus"
            assert panel["targets"]


def test_main_dashboard_uid() -> None:
    assert load(MAIN_DASHBOARD)["uid"] == "agent-service"


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in load(MAIN_DASHBOARD)["panels"]:
        pos = panel["gridPos"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        assert pos["x"] + pos["w"] <= 24
        taken |= cells
