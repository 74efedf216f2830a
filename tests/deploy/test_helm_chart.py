"""The Helm chart, rendered and linted by Helm's own Go code (helm-python-sdk), no cluster."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from helm_python import Chart

from app.core.settings_loader import load_settings
from tests.deploy.support import (
    APP_ENV,
    CHART_DIR,
    SECRET_KEYS,
    STRONG_SECRET,
    Manifest,
    container,
    deployment,
    loaded_chart,
    of_kind,
    one,
    production_values,
    render,
    set_env,
)

REDIS_URL = "redis://redis.example.internal:6379/0"
SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"
# Not Settings fields but set on purpose: HOME for gunicorn's control socket (read-only root
# filesystem), OPENAI_API_KEY for the OpenAI-compatible provider.
EXTRA_CONTAINER_ENV = {"HOME", "OPENAI_API_KEY"}


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with loaded_chart() as loaded:
        yield loaded


@pytest.fixture(scope="module")
def default_objects(chart: Chart) -> list[Manifest]:
    return render(chart)


@pytest.fixture(scope="module")
def production_objects(chart: Chart) -> list[Manifest]:
    return render(chart, production_values())


def kinds(objects: list[Manifest]) -> set[str]:
    return {obj["kind"] for obj in objects}


def pod_spec(deploy: Manifest) -> Manifest:
    spec: Manifest = deploy["spec"]["template"]["spec"]
    return spec


def pod_annotations(deploy: Manifest) -> dict[str, str]:
    found: dict[str, str] = deploy["spec"]["template"]["metadata"].get("annotations", {})
    return found


def configmap_data(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    return data


def secret_refs(deploy: Manifest) -> dict[str, Manifest]:
    refs = {}
    for entry in container(deploy).get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            refs[entry["name"]] = ref
    return refs


# --- lint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, "production"], ids=["default", "production"])
def test_chart_lints_clean_in_strict_mode(values: str | None) -> None:
    report = helm.lint(CHART_DIR, production_values() if values else None, strict=True)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error; info (1) such as "icon is recommended" is fine.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_reports_values_the_schema_refuses() -> None:
    report = helm.lint(CHART_DIR, {"replicaCount": "three"}, strict=True)
    assert report["errors"] or any(m["severity"] == 3 for m in report["messages"])


# --- what renders by default -------------------------------------------------------------------


def test_default_render_has_the_core_objects_and_no_optional_ones(
    default_objects: list[Manifest],
) -> None:
    assert {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "NetworkPolicy",  # on by default (tests/security/test_chart_defaults.py)
    } <= kinds(default_objects)
    for absent in (
        "Ingress",
        "HTTPRoute",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    ):
        assert absent not in kinds(default_objects)
    # Only the API: no worker, no in-chart Redis.
    assert [
        d["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in of_kind(default_objects, "Deployment")
    ] == ["api"]


def test_api_probes_hit_the_health_endpoints(default_objects: list[Manifest]) -> None:
    api = container(deployment(default_objects, "api"))
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["startupProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["port"] == "http"
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in api["ports"]
    # The startup probe gives a slow start room before liveness may restart the pod.
    startup = api["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_pods_run_as_non_root_with_a_read_only_root(default_objects: list[Manifest]) -> None:
    api_deploy = deployment(default_objects, "api")
    pod = pod_spec(api_deploy)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 10001
    assert pod["fsGroup"] == 10001
    ctx = container(api_deploy)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert pod_spec(api_deploy)["automountServiceAccountToken"] is False


def test_writable_paths_are_empty_dirs(default_objects: list[Manifest]) -> None:
    api_deploy = deployment(default_objects, "api")
    volumes = {v["name"]: v for v in pod_spec(api_deploy)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(api_deploy)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    metrics_dir = configmap_data(default_objects)["PROMETHEUS_MULTIPROC_DIR"]
    assert "emptyDir" in volumes[mounts[metrics_dir]]
    # gunicorn's heartbeat files go to /dev/shm, writable with a read-only root.
    assert configmap_data(default_objects)["GUNICORN_WORKER_TMP_DIR"] == "/dev/shm"
    env = {e["name"]: e.get("value") for e in container(api_deploy)["env"]}
    assert env["HOME"] == "/tmp"


def test_resources_are_requested_and_memory_is_limited(default_objects: list[Manifest]) -> None:
    resources = container(deployment(default_objects, "api"))["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_service_targets_the_api_pods(default_objects: list[Manifest]) -> None:
    service = one(default_objects, "Service")
    api_deploy = deployment(default_objects, "api")
    assert service["spec"]["selector"] == api_deploy["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    labels = api_deploy["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())


# --- graceful shutdown ---------------------------------------------------------------------------


@pytest.mark.parametrize(("pre_stop", "graceful", "margin"), [(10, 30, 5), (5, 120, 10), (0, 4, 1)])
def test_grace_period_covers_pre_stop_and_gunicorn_graceful_timeout(
    chart: Chart, pre_stop: int, graceful: int, margin: int
) -> None:
    shutdown = {
        "preStopSleepSeconds": pre_stop,
        "gracefulTimeoutSeconds": graceful,
        "marginSeconds": margin,
    }
    objects = render(chart, {"shutdown": shutdown})
    api_deploy = deployment(objects, "api")
    grace = pod_spec(api_deploy)["terminationGracePeriodSeconds"]
    assert grace == pre_stop + graceful + margin
    assert container(api_deploy)["lifecycle"]["preStop"]["exec"]["command"] == [
        "sleep",
        str(pre_stop),
    ]
    gunicorn_graceful = int(configmap_data(objects)["GUNICORN_GRACEFUL_TIMEOUT"])
    assert gunicorn_graceful == graceful
    # docs/deployment.md: uvicorn's drain (graceful - 3, gunicorn_worker.py) < gunicorn's
    # graceful_timeout < terminationGracePeriodSeconds - preStop sleep.
    assert max(1, gunicorn_graceful - 3) < gunicorn_graceful < grace - pre_stop


def test_stream_grace_must_fit_in_uvicorn_drain(chart: Chart) -> None:
    # Streams get SHUTDOWN_STREAM_GRACE_SECONDS for a final event, inside uvicorn's drain.
    ok = render(chart, {"config": {"SHUTDOWN_STREAM_GRACE_SECONDS": 20}})
    assert configmap_data(ok)["SHUTDOWN_STREAM_GRACE_SECONDS"] == "20"
    with pytest.raises(helm.HelmRenderError, match="SHUTDOWN_STREAM_GRACE_SECONDS"):
        render(chart, {"config": {"SHUTDOWN_STREAM_GRACE_SECONDS": 27}})
    with pytest.raises(helm.HelmRenderError, match="SHUTDOWN_STREAM_GRACE_SECONDS"):
        render(
            chart,
            {
                "config": {"SHUTDOWN_STREAM_GRACE_SECONDS": 10},
                "shutdown": {"gracefulTimeoutSeconds": 12},
            },
        )


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("values", ["default", "production"])
def test_configmap_holds_only_app_settings_that_the_app_accepts(
    chart: Chart, values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(chart, production_values() if values == "production" else None)
    data = configmap_data(objects)
    assert set(data) <= APP_ENV, set(data) - APP_ENV
    assert not set(data) & set(SECRET_KEYS)
    assert all(isinstance(value, str) for value in data.values())
    # The pod's environment (ConfigMap + a secret) builds Settings, production guards included.
    set_env(monkeypatch, {**data, "SECRET_KEY": STRONG_SECRET})
    settings = load_settings(_env_file=None)
    assert settings.ENVIRONMENT == "production"
    assert settings.HOST == "0.0.0.0"  # noqa: S104 (inside the pod)
    assert settings.PORT == 8000


def test_whole_numbers_render_as_integers_not_floats(chart: Chart) -> None:
    # Helm reads numbers as float64: 1048576 must not become "1.048576e+06".
    objects = render(chart, {"config": {"MAX_REQUEST_BODY_BYTES": 1048576, "CACHE_TTL": 86400}})
    data = configmap_data(objects)
    assert data["MAX_REQUEST_BODY_BYTES"] == "1048576"
    assert data["CACHE_TTL"] == "86400"
    objects = render(chart, {"config": {"REDIS_SOCKET_TIMEOUT": 0.25}})
    assert configmap_data(objects)["REDIS_SOCKET_TIMEOUT"] == "0.25"


def test_forwarded_allow_ips_comes_from_trusted_proxies(chart: Chart) -> None:
    objects = render(chart, {"trustedProxies": ["10.42.0.0/16", "10.43.0.0/16"]})
    assert configmap_data(objects)["FORWARDED_ALLOW_IPS"] == "10.42.0.0/16,10.43.0.0/16"
    # No proxy in front: nothing but loopback is believed.
    assert configmap_data(render(chart))["FORWARDED_ALLOW_IPS"] == "127.0.0.1"


@pytest.mark.parametrize("values", ["default", "production", "worker"])
def test_container_env_names_are_settings_or_known_extras(chart: Chart, values: str) -> None:
    chosen: dict[str, Any] | None = None
    if values == "production":
        chosen = production_values()
    elif values == "worker":
        chosen = {"worker": {"enabled": True}, "externalRedis": {"url": REDIS_URL}}
    objects = render(chart, chosen)
    config_map = one(objects, "ConfigMap")["metadata"]["name"]
    app_deployments = [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] in {"api", "worker"}
    ]
    assert len(app_deployments) == (1 if values == "default" else 2)
    for deploy in app_deployments:
        names = {entry["name"] for entry in container(deploy).get("env", [])}
        assert names <= APP_ENV | EXTRA_CONTAINER_ENV, names - APP_ENV - EXTRA_CONTAINER_ENV
        assert container(deploy)["envFrom"] == [{"configMapRef": {"name": config_map}}]


# --- secrets -------------------------------------------------------------------------------------


def decoded(secret: Manifest) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_generated_secret_is_strong_enough_for_production(default_objects: list[Manifest]) -> None:
    data = decoded(one(default_objects, "Secret"))
    assert len(data["SECRET_KEY"].encode()) >= 32
    assert 0 < len(data["ADMIN_PASSWORD"].encode()) <= 72  # bcrypt's limit
    assert "REDIS_URL" not in data


def test_given_secrets_and_external_redis_go_into_the_secret(chart: Chart) -> None:
    objects = render(
        chart,
        {
            "secrets": {
                "SECRET_KEY": STRONG_SECRET,
                "ADMIN_PASSWORD": "admin-pass-for-tests",
                "OPENAI_API_KEY": "sk-test",
            },
            "externalRedis": {"url": REDIS_URL},
        },
    )
    data = decoded(one(objects, "Secret"))
    assert data == {
        "SECRET_KEY": STRONG_SECRET,
        "ADMIN_PASSWORD": "admin-pass-for-tests",
        "OPENAI_API_KEY": "sk-test",
        "REDIS_URL": REDIS_URL,
    }
    # Secret values never leak into the ConfigMap or the pod spec.
    rendered_elsewhere = str([obj for obj in objects if obj["kind"] != "Secret"])
    for value in data.values():
        assert value not in rendered_elsewhere


def test_existing_secret_replaces_the_chart_secret(chart: Chart) -> None:
    objects = render(
        chart,
        {"existingSecret": "my-secrets", "replicaCount": 3, "worker": {"enabled": True}},
    )
    assert of_kind(objects, "Secret") == []
    for component in ("api", "worker"):
        refs = secret_refs(deployment(objects, component))
        assert set(refs) == set(SECRET_KEYS)
        assert {ref["name"] for ref in refs.values()} == {"my-secrets"}
        assert refs["SECRET_KEY"].get("optional") is not True
        assert all(refs[key]["optional"] is True for key in SECRET_KEYS if key != "SECRET_KEY")


def test_chart_secret_is_referenced_by_the_pods(default_objects: list[Manifest]) -> None:
    secret_name = one(default_objects, "Secret")["metadata"]["name"]
    refs = secret_refs(deployment(default_objects, "api"))
    assert {ref["name"] for ref in refs.values()} == {secret_name}


def test_secret_values_and_existing_secret_together_are_refused(chart: Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="existingSecret"):
        render(chart, {"existingSecret": "mine", "secrets": {"SECRET_KEY": STRONG_SECRET}})


# --- checksums roll the pods ---------------------------------------------------------------------


FIXED_SECRETS = {"secrets": {"SECRET_KEY": STRONG_SECRET, "ADMIN_PASSWORD": "admin-pass-fixed"}}


def checksums(chart: Chart, extra: dict[str, Any]) -> dict[str, str]:
    values = copy.deepcopy(FIXED_SECRETS)
    for key, value in extra.items():
        values.setdefault(key, {}).update(value)
    found = pod_annotations(deployment(render(chart, values), "api"))
    return {k: v for k, v in found.items() if k.startswith("checksum/")}


def test_checksum_annotations_change_with_config_and_secret(chart: Chart) -> None:
    base = checksums(chart, {})
    assert set(base) == {"checksum/config", "checksum/secret"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in base.values())
    assert checksums(chart, {}) == base  # stable when nothing changes
    config_changed = checksums(chart, {"config": {"LOG_LEVEL": "DEBUG"}})
    assert config_changed["checksum/config"] != base["checksum/config"]
    assert config_changed["checksum/secret"] == base["checksum/secret"]
    secret_changed = checksums(chart, {"secrets": {"ADMIN_PASSWORD": "another-pass"}})
    assert secret_changed["checksum/secret"] != base["checksum/secret"]
    assert secret_changed["checksum/config"] == base["checksum/config"]


def test_worker_pods_carry_the_checksums_too(chart: Chart) -> None:
    objects = render(chart, {"worker": {"enabled": True}, "externalRedis": {"url": REDIS_URL}})
    assert {"checksum/config", "checksum/secret"} <= set(
        pod_annotations(deployment(objects, "worker"))
    )


def test_prometheus_scrape_annotations_follow_the_flag(chart: Chart) -> None:
    on = pod_annotations(deployment(render(chart), "api"))
    assert on["prometheus.io/scrape"] == "true"
    assert on["prometheus.io/port"] == "8000"
    assert on["prometheus.io/path"] == "/metrics"
    off = pod_annotations(deployment(render(chart, {"metrics": {"podAnnotations": False}}), "api"))
    assert not any(key.startswith("prometheus.io/") for key in off)


# --- ingress and Gateway API ---------------------------------------------------------------------


INGRESS: dict[str, Any] = {
    "trustedProxies": ["10.244.0.0/16"],
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": [{"host": "agents.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "agents-tls", "hosts": ["agents.example.com"]}],
    },
}
STREAMING_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
}


def test_ingress_has_class_tls_and_streaming_annotations(chart: Chart) -> None:
    objects = render(chart, INGRESS)
    ingress = one(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "agents-tls", "hosts": ["agents.example.com"]}]
    assert STREAMING_ANNOTATIONS.items() <= ingress["metadata"]["annotations"].items()
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {
        "name": one(objects, "Service")["metadata"]["name"],
        "port": {"name": "http"},
    }


def test_ingress_annotations_can_be_overridden_or_left_out(chart: Chart) -> None:
    values = copy.deepcopy(INGRESS)
    values["ingress"]["annotations"] = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"}
    found = one(render(chart, values), "Ingress")["metadata"]["annotations"]
    assert found["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"
    values = copy.deepcopy(INGRESS)
    values["ingress"].update(nginxStreamingAnnotations=False, className=None)
    ingress = one(render(chart, values), "Ingress")
    assert not (ingress["metadata"].get("annotations") or {})
    assert "ingressClassName" not in ingress["spec"]


def test_http_route_attaches_to_the_gateway(chart: Chart) -> None:
    objects = render(
        chart,
        {
            "gatewayAPI": {
                "enabled": True,
                "parentRefs": [{"name": "public", "namespace": "gateway-system"}],
                "hostnames": ["agents.example.com"],
                "timeouts": {"request": "3600s"},
            },
            "trustedProxies": ["10.244.0.0/16"],
        },
    )
    route = one(objects, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system"}]
    rule = route["spec"]["rules"][0]
    assert rule["backendRefs"] == [
        {"name": one(objects, "Service")["metadata"]["name"], "port": 80}
    ]
    assert rule["timeouts"] == {"request": "3600s"}
    # The API prefix and the protocol surfaces, as for the ingress: /metrics, /health and
    # /docs stay inside.
    published = ["/v1", "/a2a", "/mcp", "/.well-known"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": p}} for p in published]


# --- scaling and disruption ----------------------------------------------------------------------


def test_hpa_replaces_the_replica_count_when_enabled(chart: Chart) -> None:
    objects = render(
        chart,
        {
            "autoscaling": {"enabled": True, "inFlightRequests": {"enabled": True}},
            "externalRedis": {"url": REDIS_URL},
        },
    )
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment(objects, "api")["metadata"]["name"]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "http_requests_in_flight"
    assert "replicas" not in deployment(objects, "api")["spec"]


def test_no_hpa_when_disabled(default_objects: list[Manifest]) -> None:
    assert of_kind(default_objects, "HorizontalPodAutoscaler") == []
    assert deployment(default_objects, "api")["spec"]["replicas"] == 1


def test_pdb_follows_its_flag(chart: Chart, default_objects: list[Manifest]) -> None:
    pdb = one(default_objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deployment(default_objects, "api")["spec"]["selector"]
    objects = render(chart, {"podDisruptionBudget": {"enabled": False}})
    assert of_kind(objects, "PodDisruptionBudget") == []
    objects = render(chart, {"podDisruptionBudget": {"minAvailable": 2, "maxUnavailable": None}})
    assert one(objects, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": pdb["spec"]["selector"],
    }


# --- worker, Redis, monitoring, network policy ---------------------------------------------------


WORKER = {"worker": {"enabled": True}, "externalRedis": {"url": REDIS_URL}}
# app/tasks/worker.py: after WORKER_SHUTDOWN_GRACE_SECONDS the worker cancels what still runs
# and waits up to this long for those tasks to be handed back for redelivery.
TASK_RELEASE_SECONDS = 5


def plain_env(deploy: Manifest) -> dict[str, str]:
    """The container's literal env values (secret references left out)."""
    return {e["name"]: e["value"] for e in container(deploy).get("env", []) if "value" in e}


def pod_env(objects: list[Manifest], component: str) -> dict[str, str]:
    """What the process sees: the ConfigMap (envFrom), then the container's own env on top."""
    return {**configmap_data(objects), **plain_env(deployment(objects, component))}


def services_selecting(objects: list[Manifest], component: str) -> list[Manifest]:
    deploy = deployment(objects, component)
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    return [
        s
        for s in of_kind(objects, "Service")
        if all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
    ]


def test_default_values_run_tasks_in_the_api(default_objects: list[Manifest]) -> None:
    assert plain_env(deployment(default_objects, "api"))["WORKER_ENABLED"] == "true"
    assert not any(
        d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
        for d in of_kind(default_objects, "Deployment") + of_kind(default_objects, "Service")
    )


def test_worker_deployment_runs_the_worker_role(chart: Chart) -> None:
    objects = render(chart, WORKER)
    worker = deployment(objects, "worker")
    assert container(worker)["command"] == ["agent-service", "worker"]
    assert pod_spec(worker)["securityContext"]["runAsUser"] == 10001
    assert pod_spec(worker)["automountServiceAccountToken"] is False
    # The API pods only queue tasks now.
    assert plain_env(deployment(objects, "api"))["WORKER_ENABLED"] == "false"
    # Worker pods are not selected by the API Service or its PDB.
    assert [s["metadata"]["name"] for s in services_selecting(objects, "api")] == ["agent-service"]
    pdb_selector = one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert pdb_selector["app.kubernetes.io/component"] == "api"


def test_worker_has_a_read_only_root_and_an_empty_dir_tmp(chart: Chart) -> None:
    worker = deployment(render(chart, WORKER), "worker")
    ctx = container(worker)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod_spec(worker)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(worker)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert plain_env(worker)["HOME"] == "/tmp"


@pytest.mark.parametrize("port", [9100, 9464])
def test_worker_serves_metrics_on_a_named_port(chart: Chart, port: int) -> None:
    objects = render(chart, {**WORKER, "worker": {"enabled": True, "metricsPort": port}})
    worker = deployment(objects, "worker")
    assert container(worker)["ports"] == [
        {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    ]
    assert pod_env(objects, "worker")["WORKER_METRICS_PORT"] == str(port)
    # Liveness: the metrics server is the only HTTP the worker serves.
    probe = container(worker)["livenessProbe"]
    assert probe["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 20
    assert "readinessProbe" not in container(worker)  # nothing routes requests to it
    found = pod_annotations(worker)
    assert found["prometheus.io/scrape"] == "true"
    assert found["prometheus.io/port"] == str(port)
    assert found["prometheus.io/path"] == "/metrics"
    off = render(chart, {**WORKER, "metrics": {"podAnnotations": False}})
    assert not any(
        key.startswith("prometheus.io/") for key in pod_annotations(deployment(off, "worker"))
    )


def test_worker_metrics_have_a_headless_service(chart: Chart) -> None:
    objects = render(chart, WORKER)
    [service] = services_selecting(objects, "worker")
    assert service["metadata"]["name"] == "agent-service-worker"
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]


@pytest.mark.parametrize(("grace_period", "margin"), [(60, 10), (120, 6), (8, 7), (3600, 300)])
def test_worker_shutdown_grace_fits_in_the_termination_grace_period(
    chart: Chart, grace_period: int, margin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        **WORKER,
        "worker": {
            "enabled": True,
            "terminationGracePeriodSeconds": grace_period,
            "shutdownMarginSeconds": margin,
        },
    }
    objects = render(chart, values)
    worker = deployment(objects, "worker")
    termination = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert termination == grace_period
    # No preStop: nothing load-balances to workers, SIGTERM should come at once.
    assert "lifecycle" not in container(worker)
    set_env(monkeypatch, {**pod_env(objects, "worker"), "SECRET_KEY": STRONG_SECRET})
    settings = load_settings(_env_file=None)
    assert settings.WORKER_SHUTDOWN_GRACE_SECONDS == grace_period - margin
    # Tasks finish within the grace, the rest are handed back, the process exits: all before
    # the kubelet's SIGKILL.
    assert 0 < settings.WORKER_SHUTDOWN_GRACE_SECONDS + TASK_RELEASE_SECONDS < termination


def test_worker_shutdown_values_that_leave_no_time_are_refused(chart: Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="shutdownMarginSeconds"):
        render(
            chart,
            {
                **WORKER,
                "worker": {
                    "enabled": True,
                    "terminationGracePeriodSeconds": 10,
                    "shutdownMarginSeconds": 10,
                },
            },
        )
    # Computed for the worker pods: a value in config would be silently overridden.
    with pytest.raises(helm.HelmRenderError, match="WORKER_SHUTDOWN_GRACE_SECONDS"):
        render(chart, {**WORKER, "config": {"WORKER_SHUTDOWN_GRACE_SECONDS": 30}})


def test_in_process_task_grace_must_fit_in_gunicorn_graceful_timeout(chart: Chart) -> None:
    # worker.enabled=false: the API pods run tasks and stop them in their lifespan shutdown.
    ok = render(chart, {"config": {"WORKER_SHUTDOWN_GRACE_SECONDS": 20}})
    assert configmap_data(ok)["WORKER_SHUTDOWN_GRACE_SECONDS"] == "20"
    assert plain_env(deployment(ok, "api"))["WORKER_ENABLED"] == "true"
    with pytest.raises(helm.HelmRenderError, match="WORKER_SHUTDOWN_GRACE_SECONDS"):
        render(chart, {"config": {"WORKER_SHUTDOWN_GRACE_SECONDS": 25}})


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 2},
        {"autoscaling": {"enabled": True}},
        {"worker": {"enabled": True}},
    ],
    ids=["api-replicas", "autoscaling", "worker"],
)
def test_shared_task_queue_needs_redis(chart: Chart, values: dict[str, Any]) -> None:
    # With or without worker pods, tasks are taken by more than one process: Redis is the queue.
    with pytest.raises(helm.HelmRenderError, match="need Redis"):
        render(chart, values)
    objects = render(chart, {**values, "externalRedis": {"url": REDIS_URL}})
    api_runs_tasks = plain_env(deployment(objects, "api"))["WORKER_ENABLED"]
    assert api_runs_tasks == ("false" if "worker" in values else "true")


def test_dev_redis_is_wired_to_the_pods(chart: Chart) -> None:
    objects = render(chart, {"redis": {"enabled": True}, "replicaCount": 2})
    redis = deployment(objects, "redis")
    redis_container = container(redis)
    assert redis["spec"]["replicas"] == 1
    assert "--appendonly" in redis_container["args"]
    assert redis_container["securityContext"]["readOnlyRootFilesystem"] is True
    redis_service = one(objects, "Service", f"{redis['metadata']['name']}")
    env = {e["name"]: e for e in container(deployment(objects, "api"))["env"]}
    assert env["REDIS_URL"]["value"] == f"redis://{redis_service['metadata']['name']}:6379/0"


@pytest.mark.parametrize(
    ("flag", "api_versions", "expected"),
    [
        ("auto", None, False),
        ("auto", ["monitoring.coreos.com/v1/ServiceMonitor"], True),
        (True, None, True),
        (False, ["monitoring.coreos.com/v1/ServiceMonitor"], False),
    ],
)
def test_service_monitor_needs_the_crd_or_the_flag(
    chart: Chart, flag: Any, api_versions: list[str] | None, expected: bool
) -> None:
    objects = render(chart, {"serviceMonitor": {"enabled": flag}}, api_versions=api_versions)
    monitors = of_kind(objects, "ServiceMonitor")
    assert bool(monitors) is expected
    if expected:
        endpoint = monitors[0]["spec"]["endpoints"][0]
        assert endpoint["port"] == "http"
        assert endpoint["path"] == "/metrics"
        service = one(objects, "Service")
        assert (
            monitors[0]["spec"]["selector"]["matchLabels"].items()
            <= service["metadata"]["labels"].items()
        )


@pytest.mark.parametrize("worker", [False, True])
def test_worker_service_monitor_follows_the_api_one(chart: Chart, worker: bool) -> None:
    values: dict[str, Any] = {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}
    if worker:
        values.update(WORKER)
    objects = render(chart, values)
    monitors = {m["metadata"]["name"]: m for m in of_kind(objects, "ServiceMonitor")}
    if not worker:
        assert set(monitors) == {"agent-service"}
        return
    assert set(monitors) == {"agent-service", "agent-service-worker"}
    monitor = monitors["agent-service-worker"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    [service] = services_selecting(objects, "worker")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    # The API monitor does not pick the worker Service up (no port "http" there anyway).
    api_selector = monitors["agent-service"]["spec"]["selector"]["matchLabels"]
    assert not api_selector.items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # Off (or auto without the CRD): neither monitor renders.
    assert (
        of_kind(render(chart, {**WORKER, "serviceMonitor": {"enabled": False}}), "ServiceMonitor")
        == []
    )


def metrics_rules(policy: Manifest) -> list[Manifest]:
    return [
        rule
        for rule in policy["spec"]["ingress"]
        if any(p["port"] == "metrics" for p in rule["ports"])
    ]


def test_network_policy_admits_the_worker_metrics_scrape(chart: Chart) -> None:
    ingress_peer = {"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    policy = one(render(chart, {"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    assert metrics_rules(policy) == []  # no worker, no metrics port to open
    values: dict[str, Any] = {
        **WORKER,
        "networkPolicy": {"enabled": True, "ingressFrom": [ingress_peer, monitoring]},
    }
    objects = render(chart, values)
    policy = one(objects, "NetworkPolicy")
    selector = policy["spec"]["podSelector"]
    worker_labels = deployment(objects, "worker")["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"].items() <= worker_labels.items()
    assert "worker" in selector["matchExpressions"][0]["values"]
    # Without metricsFrom the ingressFrom peers (Prometheus among them) may scrape.
    [rule] = metrics_rules(policy)
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert monitoring in rule["from"] and ingress_peer in rule["from"]
    values["networkPolicy"]["metricsFrom"] = [monitoring]
    [rule] = metrics_rules(one(render(chart, values), "NetworkPolicy"))
    assert monitoring in rule["from"] and ingress_peer not in rule["from"]


def test_network_policy_admits_the_configured_peers(chart: Chart) -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    objects = render(
        chart,
        {
            "networkPolicy": {
                "enabled": True,
                "ingressFrom": [peer],
                "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}],
            }
        },
    )
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert peer in policy["spec"]["ingress"][0]["from"]
    egress_ports = [p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
    assert 53 in egress_ports and 443 in egress_ports


# --- the production values file ------------------------------------------------------------------


def test_production_values_render_a_hardened_release(production_objects: list[Manifest]) -> None:
    objs = production_objects
    assert of_kind(objs, "Secret") == []  # existingSecret
    api_deploy = deployment(objs, "api")
    assert {ref["name"] for ref in secret_refs(api_deploy).values()} == {"agent-service-secrets"}
    assert one(objs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] >= 1
    ingress = one(objs, "Ingress")
    assert ingress["spec"]["tls"]
    assert STREAMING_ANNOTATIONS.items() <= ingress["metadata"]["annotations"].items()
    # Only named paths are routed: no catch-all prefix that would publish /metrics.
    paths = {
        (p["path"], p["pathType"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert {("/v1", "Prefix"), ("/a2a", "Prefix"), ("/mcp", "Exact")} <= paths
    assert ("/.well-known", "Prefix") in paths  # agent cards, MCP's OAuth metadata
    assert ("/", "Prefix") not in paths
    assert not any(path.startswith(("/metrics", "/health")) for path, _ in paths)
    assert one(objs, "NetworkPolicy")
    data = configmap_data(objs)
    assert data["FORWARDED_ALLOW_IPS"] not in {"*", "127.0.0.1"}
    assert data["DOCS_ENABLED"] == "false"


def test_production_values_run_tasks_in_worker_pods(
    chart: Chart, production_objects: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = production_objects
    worker = deployment(objs, "worker")
    assert worker["spec"]["replicas"] >= 2
    assert container(worker)["command"] == ["agent-service", "worker"]
    # Redis comes from the existing Secret, like the API's.
    refs = secret_refs(worker)
    assert refs["REDIS_URL"]["name"] == "agent-service-secrets"
    assert refs["SECRET_KEY"]["name"] == "agent-service-secrets"
    # The API pods leave the tasks to the workers.
    set_env(monkeypatch, {**pod_env(objs, "api"), "SECRET_KEY": STRONG_SECRET})
    assert load_settings(_env_file=None).WORKER_ENABLED is False
    # Metrics port, named, and liveness on /metrics.
    [port] = container(worker)["ports"]
    assert port["name"] == "metrics"
    assert container(worker)["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container(worker)["securityContext"]["readOnlyRootFilesystem"] is True
    # The worker's own settings: metrics on that port, the grace ordering holds.
    set_env(monkeypatch, {**pod_env(objs, "worker"), "SECRET_KEY": STRONG_SECRET})
    settings = load_settings(_env_file=None)
    assert settings.WORKER_METRICS_PORT == port["containerPort"]
    assert settings.REDIS_URL is None  # from the Secret at run time, absent here
    termination = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert 0 < settings.WORKER_SHUTDOWN_GRACE_SECONDS + TASK_RELEASE_SECONDS < termination
    assert settings.WORKER_CONCURRENCY >= 1
    # Scraped: the ServiceMonitor (no annotations in production), admitted by the policy.
    assert not any(k.startswith("prometheus.io/") for k in pod_annotations(worker))
    [rule] = metrics_rules(one(objs, "NetworkPolicy"))
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    } in rule["from"]
    with_crd = render(chart, production_values(), api_versions=[SERVICE_MONITOR])
    monitors = {m["metadata"]["name"] for m in of_kind(with_crd, "ServiceMonitor")}
    assert monitors == {"agent-service", "agent-service-worker"}


# --- values.schema.json --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicaCount": "three"}, "/replicaCount"),
        ({"ingress": {"className": 123}}, "/ingress/className"),
        ({"secrets": {"SECRET_KEY": "too-short"}}, "/secrets/SECRET_KEY"),
        ({"secrets": {"ADMIN_PASSWORD": "x" * 73}}, "/secrets/ADMIN_PASSWORD"),
        ({"config": {"SECRET_KEY": STRONG_SECRET}}, "SECRET_KEY"),
        ({"config": {"log_level": "INFO"}}, "log_level"),
        ({"config": {"LOG_LEVEL": "LOUD"}}, "/config/LOG_LEVEL"),
        ({"shutdown": {"gracefulTimeoutSeconds": 2}}, "/shutdown/gracefulTimeoutSeconds"),
        ({"serviceMonitor": {"enabled": "yes"}}, "/serviceMonitor/enabled"),
        ({"gatewayAPI": {"enabled": True}}, "/gatewayAPI/parentRefs"),
        ({"replicaCont": 2}, "replicaCont"),
        ({"externalRedis": {"url": "http://not-redis"}}, "/externalRedis/url"),
        ({"config": {"WORKER_ENABLED": False}}, "WORKER_ENABLED"),
        ({"config": {"WORKER_METRICS_PORT": 9200}}, "WORKER_METRICS_PORT"),
        ({"config": {"WORKER_ID": "worker-1"}}, "WORKER_ID"),
        ({"config": {"WORKER_CONCURRENCY": 0}}, "/config/WORKER_CONCURRENCY"),
        ({"config": {"MAX_ATTEMPTS": 50}}, "/config/MAX_ATTEMPTS"),
        ({"worker": {"replicaCount": 0}}, "/worker/replicaCount"),
        ({"worker": {"metricsPort": 0}}, "/worker/metricsPort"),
        ({"worker": {"shutdownMarginSeconds": 3}}, "/worker/shutdownMarginSeconds"),
        ({"worker": {"livenessProbe": {"exec": {}}}}, "exec"),
        ({"worker": {"metricsPrt": 9100}}, "metricsPrt"),
        ({"networkPolicy": {"metricsFrom": {}}}, "/networkPolicy/metricsFrom"),
    ],
)
def test_schema_rejects_bad_values(chart: Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart, values)
    assert where in str(info.value)
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(values))


def test_schema_accepts_the_shipped_values(chart: Chart) -> None:
    chart.validate_schema(chart.merge_values({}))
    chart.validate_schema(chart.merge_values(production_values()))


# --- NOTES.txt -----------------------------------------------------------------------------------


def notes(chart: Chart, values: dict[str, Any] | None = None) -> str:
    rendered = chart.render(values or {}, name="agent-service", namespace="agents")
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def test_notes_say_how_to_reach_the_service(chart: Chart) -> None:
    text = notes(chart)
    assert "kubectl --namespace agents port-forward svc/agent-service 8000:80" in text
    assert "No Redis is configured" in text
    assert "DOCS_ENABLED=false" in text  # docs are off by default
    text = notes(chart, INGRESS)
    assert "https://agents.example.com/v1/agents" in text
    assert "/docs" not in text
    assert "port-forward" not in text
    assert "development only" in notes(chart, {"redis": {"enabled": True}})


def test_notes_say_where_tasks_run(chart: Chart) -> None:
    assert "run background tasks in-process" in notes(chart)
    text = notes(chart, WORKER)
    assert "1 worker pod(s)" in text
    assert "WORKER_ENABLED=false" in text
