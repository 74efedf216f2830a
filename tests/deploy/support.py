"""Shared helpers for the deployment-artefact tests: paths, env names, chart rendering."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python import Chart, _native

from app.core.config import Settings
from app.core.gunicorn_env import GUNICORN_ENV  # what docker/gunicorn.conf.py reads

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy/helm/agent-service"
PRODUCTION_VALUES = CHART_DIR / "values-production.yaml"
DOCKER_DIR = ROOT / "docker"
RELEASE = "agent-service"
NAMESPACE = "agents"

SETTINGS_FIELDS = frozenset(Settings.model_fields)
APP_ENV = SETTINGS_FIELDS | GUNICORN_ENV
# Standard OpenTelemetry variables, read by the SDK itself when TRACING_ENABLED
# (app/observability/tracing_setup.py, tracing_genai.py): deployments may set these too.
OTEL_ENV = frozenset(
    {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_TRACES_EXPORTER",
        "OTEL_PROPAGATORS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "OTEL_SDK_DISABLED",
    }
)
SECRET_KEYS = ("SECRET_KEY", "ADMIN_PASSWORD", "API_KEY_PEPPER", "REDIS_URL", "OPENAI_API_KEY")
# Random-looking: production refuses repeated patterns such as ("0123456789abcdef" * 3).
STRONG_SECRET = "3f9a1c7e52b84d06e1a9c3f7b52d8e04a6c1f93b7d25e80c"

Manifest = dict[str, Any]


def production_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(PRODUCTION_VALUES.read_text())
    return loaded


@contextmanager
def loaded_chart() -> Iterator[Chart]:
    with Chart.load(CHART_DIR) as chart:
        yield chart


def render(
    chart: Chart, values: Mapping[str, Any] | None = None, *, api_versions: list[str] | None = None
) -> list[Manifest]:
    """Render offline with Helm's own engine; returns the parsed Kubernetes objects."""
    if api_versions is None:
        rendered = chart.render(dict(values or {}), name=RELEASE, namespace=NAMESPACE)
    else:
        # Chart.render has no parameter for extra API versions (`helm template
        # --api-versions`); the native call it wraps takes them in its options.
        options = {"name": RELEASE, "namespace": NAMESPACE, "api_versions": api_versions}
        rendered = json.loads(
            _native.call_string(
                "helm_render", chart._raw(), json.dumps(dict(values or {})), json.dumps(options)
            )
        )
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        obj for obj in of_kind(objects, kind) if name is None or obj["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def deployment(objects: list[Manifest], component: str) -> Manifest:
    found = [
        obj
        for obj in of_kind(objects, "Deployment")
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment, got {len(found)}"
    return found[0]


def container(deploy: Manifest) -> Manifest:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    first: Manifest = containers[0]
    return first


def set_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Make exactly `env` the app's environment (as far as Settings can see)."""
    for name in SETTINGS_FIELDS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
