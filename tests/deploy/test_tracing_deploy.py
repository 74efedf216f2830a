"""Tracing in the deployment artefacts: Compose ships a trace backend wired to the app and to
Grafana, and the Helm chart takes an OTLP endpoint into both kinds of pods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_python import Chart

from app.core.settings_loader import load_settings
from tests.deploy.support import (
    APP_ENV,
    CHART_DIR,
    DOCKER_DIR,
    OTEL_ENV,
    STRONG_SECRET,
    container,
    deployment,
    loaded_chart,
    render,
    set_env,
)
from tests.deploy.test_compose import environment, shell_defaults

COLLECTOR = "http://otel-collector.monitoring:4318"
TRACED: dict[str, Any] = {
    "tracing": {"enabled": True, "otlpEndpoint": COLLECTOR},
    "worker": {"enabled": True},
    "externalRedis": {"url": "redis://redis.example.internal:6379/0"},
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER_DIR / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with loaded_chart() as loaded:
        yield loaded


# --- Compose -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["api", "worker"])
def test_compose_app_services_export_to_the_trace_backend(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = shell_defaults(environment(compose["services"][name]))
    jaeger = compose["services"]["jaeger"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert "4318" in [str(port) for port in jaeger["expose"]]  # OTLP/HTTP, network only
    # Off by default (the runtime image has no SDK); the shell turns it on.
    set_env(monkeypatch, {k: v for k, v in env.items() if k in APP_ENV})
    assert load_settings(_env_file=None).TRACING_ENABLED is False
    on = {**env, "TRACING_ENABLED": "true"}
    set_env(monkeypatch, {k: v for k, v in on.items() if k in APP_ENV})
    assert load_settings(_env_file=None).TRACING_ENABLED is True


def test_compose_grafana_links_exemplars_to_traces_and_prometheus_keeps_them(
    compose: dict[str, Any],
) -> None:
    datasources = yaml.safe_load(
        (DOCKER_DIR / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    by_type = {source["type"]: source for source in datasources}
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    destinations = by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations == [{"name": "trace_id", "datasourceUid": by_type["jaeger"]["uid"]}]
    assert "--enable-feature=exemplar-storage" in compose["services"]["prometheus"]["command"]
    assert "jaeger" in compose["services"]["grafana"]["depends_on"]


# --- Helm ----------------------------------------------------------------------------------------


def test_tracing_is_off_by_default_and_sets_no_otel_variables(chart: Chart) -> None:
    names = {e["name"] for e in container(deployment(render(chart), "api"))["env"]}
    assert not {name for name in names if name.startswith(("OTEL_", "TRACING_"))}


@pytest.mark.parametrize("component", ["api", "worker"])
def test_the_otlp_endpoint_reaches_api_and_worker_pods(
    chart: Chart, component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {**TRACED, "tracing": {**TRACED["tracing"], "resourceAttributes": "team=agents"}}
    env = {
        entry["name"]: entry.get("value")
        for entry in container(deployment(render(chart, values), component))["env"]
    }
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == COLLECTOR
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.namespace.name=agents,team=agents"
    otel = {name for name in env if name.startswith("OTEL_")}
    assert otel <= OTEL_ENV, otel - OTEL_ENV
    # What the app reads of it builds valid Settings.
    settings_env = {k: v for k, v in env.items() if k in APP_ENV and v is not None}
    set_env(monkeypatch, {**settings_env, "SECRET_KEY": STRONG_SECRET})
    settings = load_settings(_env_file=None)
    assert settings.TRACING_ENABLED is True
    assert settings.TRACING_TRUST_INCOMING == "proxies"


def test_tracing_without_an_endpoint_is_refused(chart: Chart) -> None:
    with pytest.raises(helm.HelmError, match="tracing.otlpEndpoint"):
        render(chart, {"tracing": {"enabled": True}})


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"config": {"TRACING_ENABLED": True}}, "TRACING_ENABLED"),
        ({"tracing": {"sampler": "sometimes"}}, "/tracing/sampler"),
        ({"tracing": {"otlpEndpoint": "collector:4318"}}, "/tracing/otlpEndpoint"),
        ({"tracing": {"trustIncoming": "everyone"}}, "/tracing/trustIncoming"),
        ({"tracing": {"endpoint": COLLECTOR}}, "endpoint"),
    ],
)
def test_the_schema_refuses_bad_tracing_values(
    chart: Chart, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart, values)
    assert where in str(info.value)


def test_the_traced_release_lints_clean() -> None:
    report = helm.lint(CHART_DIR, TRACED, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
