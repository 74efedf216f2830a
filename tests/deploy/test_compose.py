"""docker/docker-compose.yml, prometheus.yml and the Grafana provisioning, parsed and checked."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from app.core.settings_loader import load_settings
from tests.deploy.support import (
    APP_ENV,
    DOCKER_DIR,
    OTEL_ENV,
    ROOT,
    SETTINGS_FIELDS,
    STRONG_SECRET,
    set_env,
)

COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
APP_SERVICES = ("api", "worker")
# app/tasks/worker.py: after WORKER_SHUTDOWN_GRACE_SECONDS the worker cancels what still runs
# and waits up to this long for those tasks to be handed back.
TASK_RELEASE_SECONDS = 5


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
    assert {"api", "worker", "redis", "prometheus", "grafana", "jaeger"} <= set(compose["services"])


def test_published_ports(compose: dict[str, Any]) -> None:
    def container_ports(name: str) -> set[int]:
        return {int(str(p).rsplit(":", 1)[-1]) for p in compose["services"][name].get("ports", [])}

    assert container_ports("api") == {8000}
    assert container_ports("prometheus") == {9090}
    assert container_ports("grafana") == {3000}
    assert container_ports("jaeger") == {16686}  # the UI; OTLP stays on the compose network
    # Internal services are not published.
    assert container_ports("redis") == set()
    assert container_ports("worker") == set()
    # Published on loopback only.
    for name in ("api", "prometheus", "grafana", "jaeger"):
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
    assert set(env) <= APP_ENV | OTEL_ENV, set(env) - APP_ENV - OTEL_ENV


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


# --- the worker ------------------------------------------------------------------------------


def shell_defaults(env: dict[str, str]) -> dict[str, str]:
    """The environment as compose passes it with an empty shell (required secrets given)."""
    shell = {"SECRET_KEY": STRONG_SECRET, "ADMIN_PASSWORD": "compose-admin-pass"}
    return {k: interpolate(v, shell) for k, v in env.items()}


def test_worker_env_names_are_settings_fields(compose: dict[str, Any]) -> None:
    # The worker runs `agent-service worker`, not gunicorn: only Settings fields apply to it.
    env = environment(compose["services"]["worker"])
    assert set(env) <= SETTINGS_FIELDS | OTEL_ENV, set(env) - SETTINGS_FIELDS - OTEL_ENV


def test_api_leaves_the_tasks_to_the_worker_service(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = shell_defaults(environment(compose["services"]["api"]))
    assert env["WORKER_ENABLED"] == "false"
    set_env(monkeypatch, {k: v for k, v in env.items() if k in APP_ENV})
    assert load_settings(_env_file=None).WORKER_ENABLED is False


def test_worker_exposes_its_metrics_port_to_the_network_only(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = compose["services"]["worker"]
    env = shell_defaults(environment(worker))
    set_env(monkeypatch, env)
    settings = load_settings(_env_file=None)
    assert settings.WORKER_METRICS_PORT == 9100
    # Reachable by Prometheus on the compose network, not published on the host.
    assert [str(port) for port in worker["expose"]] == ["9100"]
    assert "ports" not in worker


def test_worker_shutdown_grace_fits_in_stop_grace_period(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = compose["services"]["worker"]
    set_env(monkeypatch, shell_defaults(environment(worker)))
    grace = load_settings(_env_file=None).WORKER_SHUTDOWN_GRACE_SECONDS
    stop_grace = int(worker["stop_grace_period"].removesuffix("s"))
    # Running tasks get `grace`, then up to TASK_RELEASE_SECONDS to be handed back, then the
    # process exits: all before compose's SIGKILL.
    assert 0 < grace + TASK_RELEASE_SECONDS < stop_grace


# --- Prometheus ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((DOCKER_DIR / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def scrape_targets(job: dict[str, Any]) -> list[str]:
    """host:port of a job's static targets and of its DNS service discovery names."""
    targets = [t for group in job.get("static_configs", []) for t in group["targets"]]
    for sd in job.get("dns_sd_configs", []):
        assert sd.get("type", "SRV") == "A", "compose's DNS answers A records, not SRV"
        targets += [f"{name}:{sd['port']}" for name in sd["names"]]
    return targets


def test_prometheus_scrapes_the_api(
    compose: dict[str, Any], prometheus_jobs: dict[str, dict[str, Any]]
) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    api_job = prometheus_jobs["agent-service"]
    assert api_job.get("metrics_path", "/metrics") == "/metrics"
    assert scrape_targets(api_job) == ["api:8000"]


def test_prometheus_scrapes_every_worker_replica(
    compose: dict[str, Any], prometheus_jobs: dict[str, dict[str, Any]]
) -> None:
    port = interpolate(environment(compose["services"]["worker"])["WORKER_METRICS_PORT"], {})
    worker_jobs = [
        job for job in prometheus_jobs.values() if f"worker:{port}" in scrape_targets(job)
    ]
    assert len(worker_jobs) == 1
    job = worker_jobs[0]
    assert job["job_name"] == "agent-service-worker"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # DNS discovery: `docker compose up --scale worker=N` gives N targets, where a static
    # "worker:9100" would reach one replica at random on each scrape.
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert "worker" in compose["services"]["prometheus"]["depends_on"]


# --- Grafana -------------------------------------------------------------------------------------


def mount_target(service: dict[str, Any], source: str) -> str:
    for volume in service["volumes"]:
        parts: list[str] = volume.split(":")
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
        ("prometheus", "http://prometheus:9090"),
        ("jaeger", "http://jaeger:16686"),
    ]
    provider_files = list((DOCKER_DIR / "grafana/provisioning/dashboards").glob("*.yml"))
    paths = [
        provider["options"]["path"]
        for file in provider_files
        for provider in yaml.safe_load(file.read_text())["providers"]
    ]
    assert paths == [dashboards_dir]
