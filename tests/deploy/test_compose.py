"""docker/docker-compose.yml, prometheus.yml and the Grafana provisioning, parsed and checked."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from app.observability import metrics as app_metrics
from app.settings_loader import load_settings
from tests.deploy.support import APP_ENV, DOCKER_DIR, ROOT, STRONG_SECRET, set_env

COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
DASHBOARD_FILE = DOCKER_DIR / "grafana/dashboards/agent-service.json"
APP_SERVICES = ("api", "worker")

# Metrics the dashboard may use: those app/observability/metrics.py defines now, and the
# names the agent, LLM cache and task queue work will define.
PLANNED_METRICS = {
    "agent_runs_total",
    "agent_run_duration_seconds",
    "llm_tokens_total",
    "llm_cache_requests_total",
    "task_queue_depth",
}
DEFINED_METRICS = {
    # prometheus_client names counter families without their _total suffix.
    family.name + ("_total" if family.type == "counter" else "")
    for collector in vars(app_metrics).values()
    if isinstance(collector, MetricWrapperBase)
    for family in collector.describe()
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with `given` as the shell env."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in given:
            return given[name]
        if op == ":?":
            raise KeyError(f"{name} is required: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert {"api", "worker", "redis", "prometheus", "grafana"} <= set(compose["services"])


def test_published_ports(compose: dict[str, Any]) -> None:
    def container_ports(name: str) -> set[int]:
        return {int(str(p).rsplit(":", 1)[-1]) for p in compose["services"][name].get("ports", [])}

    assert container_ports("api") == {8000}
    assert container_ports("prometheus") == {9090}
    assert container_ports("grafana") == {3000}
    # Internal services are not published.
    assert container_ports("redis") == set()
    assert container_ports("worker") == set()
    # Published on loopback only.
    for name in ("api", "prometheus", "grafana"):
        assert all(str(p).startswith("127.0.0.1:") for p in compose["services"][name]["ports"])


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE_FILE.parent / source).resolve().exists(), (name, source)
            else:
                used.add(source)
    assert used <= declared, used - declared
    assert {"redis-data", "prometheus-data", "grafana-data"} <= used


def test_redis_persists_with_aof(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "healthcheck" in redis


def test_app_services_build_the_image_and_wait_for_redis(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == (
            ROOT / "docker/Dockerfile"
        )
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
    assert compose["services"]["worker"]["command"] == ["agent-service", "worker"]
    assert "command" not in compose["services"]["api"]  # the image's gunicorn CMD
    assert compose["services"]["worker"]["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_env_names_are_settings_or_gunicorn_variables(
    compose: dict[str, Any], name: str
) -> None:
    env = environment(compose["services"][name])
    assert env, f"{name} sets no environment"
    assert set(env) <= APP_ENV, set(env) - APP_ENV


@pytest.mark.parametrize("name", APP_SERVICES)
def test_production_secrets_are_required_from_the_shell(compose: dict[str, Any], name: str) -> None:
    env = environment(compose["services"][name])
    assert env["ENVIRONMENT"] == "production"
    for secret in ("SECRET_KEY", "ADMIN_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), env[secret]
        with pytest.raises(KeyError, match=secret):
            interpolate(env[secret], {})
    assert env["REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_env_builds_valid_production_settings(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = {"SECRET_KEY": STRONG_SECRET, "ADMIN_PASSWORD": "compose-admin-pass"}
    env = {k: interpolate(v, shell) for k, v in environment(compose["services"][name]).items()}
    set_env(monkeypatch, {k: v for k, v in env.items() if k in APP_ENV})
    settings = load_settings(_env_file=None)
    assert settings.is_production
    assert settings.REDIS_URL == "redis://redis:6379/0"


def test_stop_grace_period_outlasts_gunicorn_graceful_timeout(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    graceful = int(interpolate(environment(api)["GUNICORN_GRACEFUL_TIMEOUT"], {}))
    grace = int(api["stop_grace_period"].removesuffix("s"))
    assert graceful < grace


# --- Prometheus ----------------------------------------------------------------------------------


def test_prometheus_scrapes_the_api(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    config = yaml.safe_load((DOCKER_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_job = jobs["agent-service"]
    assert api_job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in api_job["static_configs"] for t in group["targets"]]
    assert targets == ["api:8000"]


# --- Grafana -------------------------------------------------------------------------------------


def mount_target(service: dict[str, Any], source: str) -> str:
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")


def test_grafana_provisions_the_datasource_and_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert mount_target(grafana, "./grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards_dir = mount_target(grafana, "./grafana/dashboards")
    datasources = yaml.safe_load(
        (DOCKER_DIR / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert [(d["type"], d["url"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090")
    ]
    provider_files = list((DOCKER_DIR / "grafana/provisioning/dashboards").glob("*.yml"))
    paths = [
        provider["options"]["path"]
        for file in provider_files
        for provider in yaml.safe_load(file.read_text())["providers"]
    ]
    assert paths == [dashboards_dir]


def dashboard_exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


def metric_names(expr: str) -> set[str]:
    names = re.findall(r"\b([a-z_]+(?:_total|_seconds|_in_flight|_depth)(?:_bucket)?)\b", expr)
    return {name.removesuffix("_bucket") for name in names}


def test_dashboard_has_the_panels_operators_need() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    exprs = dashboard_exprs(dashboard)
    wanted = {
        "Request rate": {"http_requests_total"},
        "Latency p50 / p95 / p99": {"http_request_duration_seconds"},
        "Error rate (5xx)": {"http_requests_total"},
        "Agent runs": {"agent_runs_total"},
        "LLM tokens": {"llm_tokens_total"},
        "LLM cache hit ratio": {"llm_cache_requests_total"},
        "Rate-limit rejections": {"rate_limit_rejections_total"},
        "Task queue depth": {"task_queue_depth"},
    }
    for title, metrics in wanted.items():
        assert title in exprs, title
        used = set().union(*(metric_names(e) for e in exprs[title]))
        assert metrics <= used, (title, used)
    latency = " ".join(exprs["Latency p50 / p95 / p99"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in latency
    assert 'result="hit"' in " ".join(exprs["LLM cache hit ratio"])


def test_dashboard_uses_only_known_metric_names() -> None:
    assert {"http_requests_total", "http_request_duration_seconds"} <= DEFINED_METRICS
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    used = {
        name
        for exprs in dashboard_exprs(dashboard).values()
        for e in exprs
        for name in metric_names(e)
    }
    assert used, "no metric found in the dashboard"
    assert used <= DEFINED_METRICS | PLANNED_METRICS, used - DEFINED_METRICS - PLANNED_METRICS


def test_dashboard_panels_have_unique_ids_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "agent-service"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["type"] == "prometheus"
            assert panel["targets"]
