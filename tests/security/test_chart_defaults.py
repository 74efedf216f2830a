"""Finding 11, the chart's half: the Helm chart's default values are the safe ones.

The review found the defaults published /metrics, /docs and /health through the ingress
(prefix /), kept the docs on and NetworkPolicy off, and trusted only 127.0.0.1 as a proxy,
so behind an ingress every client shared one login bucket. Rendered by Helm's own engine
(helm-python-sdk, no cluster), and the pod's environment is fed to the real Settings.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from helm_python import Chart

from app.core.settings_loader import load_settings
from tests.deploy.support import Manifest, loaded_chart, one, render, set_env

POD_RANGE = "10.244.0.0/16"
BEHIND_INGRESS: dict[str, Any] = {"ingress": {"enabled": True}, "trustedProxies": [POD_RANGE]}
NOT_PUBLIC = ("/metrics", "/docs", "/redoc", "/openapi.json", "/health")


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with loaded_chart() as loaded:
        yield loaded


def configmap(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    return data


def routed_paths(ingress: Manifest) -> set[tuple[str, str]]:
    return {
        (path["path"], path["pathType"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }


# The API prefix and the protocol surfaces (A2A, MCP, agent cards and MCP's OAuth metadata
# under /.well-known): nothing else is published by default.
PUBLISHED = {("/v1", "Prefix"), ("/a2a", "Prefix"), ("/mcp", "Exact"), ("/.well-known", "Prefix")}


def test_the_default_ingress_routes_only_the_api_and_protocol_paths(chart: Chart) -> None:
    paths = routed_paths(one(render(chart, BEHIND_INGRESS), "Ingress"))
    assert paths == PUBLISHED
    # Nothing that would reach the ops endpoints or the docs from outside.
    assert all(not path.startswith(NOT_PUBLIC) and path != "/" for path, _ in paths)


def test_the_default_gateway_route_matches_only_the_api_and_protocol_paths(chart: Chart) -> None:
    values = {
        "gatewayAPI": {"enabled": True, "parentRefs": [{"name": "public"}]},
        "trustedProxies": [POD_RANGE],
    }
    [rule] = one(render(chart, values), "HTTPRoute")["spec"]["rules"]
    prefixes = [match["path"]["value"] for match in rule["matches"]]
    assert prefixes == ["/v1", "/a2a", "/mcp", "/.well-known"]
    assert {match["path"]["type"] for match in rule["matches"]} == {"PathPrefix"}


def test_docs_are_off_and_the_pods_start_without_a_production_warning(
    chart: Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(chart)
    data = configmap(objects)
    assert data["DOCS_ENABLED"] == "false"
    # The pod's environment: the ConfigMap plus the Secret the chart generated.
    secret = {
        key: base64.b64decode(value).decode()
        for key, value in one(objects, "Secret")["data"].items()
    }
    set_env(monkeypatch, {**data, **secret})
    settings = load_settings(_env_file=None)  # the production guards pass on generated secrets
    assert settings.is_production
    assert settings.DOCS_ENABLED is False
    assert settings.CACHE_SCOPE == "principal"
    assert settings.production_warnings() == []


def test_network_policy_is_on_and_admits_only_the_ingress_controller_and_prometheus(
    chart: Chart,
) -> None:
    policy = one(render(chart), "NetworkPolicy")
    [http] = [
        rule
        for rule in policy["spec"]["ingress"]
        if rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    ]
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in http["from"]
        if "namespaceSelector" in peer
    }
    assert namespaces == {"ingress-nginx", "monitoring"}
    # Every other peer is this release's own pods; no empty selector admitting everyone.
    others = [peer for peer in http["from"] if "namespaceSelector" not in peer]
    assert [set(peer) for peer in others] == [{"podSelector"}]
    assert others[0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"]


def test_the_proxy_range_sits_next_to_the_ingress_and_becomes_forwarded_allow_ips(
    chart: Chart,
) -> None:
    assert configmap(render(chart, BEHIND_INGRESS))["FORWARDED_ALLOW_IPS"] == POD_RANGE
    # No proxy in front: nobody's X-Forwarded-For is believed but loopback's.
    assert configmap(render(chart))["FORWARDED_ALLOW_IPS"] == "127.0.0.1"


@pytest.mark.parametrize("everyone", ["*", "0.0.0.0/0", "::/0"])
def test_trusting_every_proxy_is_refused(chart: Chart, everyone: str) -> None:
    with pytest.raises(helm.HelmRenderError) as info:
        render(chart, {**BEHIND_INGRESS, "trustedProxies": [POD_RANGE, everyone]})
    assert "trustedProxies must not hold" in str(info.value)


@pytest.mark.parametrize(
    "front",
    [
        {"ingress": {"enabled": True}},
        {"gatewayAPI": {"enabled": True, "parentRefs": [{"name": "gw"}]}},
    ],
)
def test_an_ingress_without_the_proxy_range_is_refused(chart: Chart, front: dict[str, Any]) -> None:
    # Rendering would trust 127.0.0.1 only: every client would share the controller's IP.
    with pytest.raises(helm.HelmRenderError) as info:
        render(chart, front)
    assert "need trustedProxies" in str(info.value)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"config": {"FORWARDED_ALLOW_IPS": "*"}}, "FORWARDED_ALLOW_IPS"),
        ({"secrets": {"API_KEY_PEPPER": "pepper"}}, "/secrets/API_KEY_PEPPER"),
        ({"secrets": {"ADMIN_PASSWORD": "admin"}}, "/secrets/ADMIN_PASSWORD"),
        ({"config": {"CACHE_SCOPE": "tenant"}}, "/config/CACHE_SCOPE"),
    ],
)
def test_the_schema_refuses_what_production_would_refuse(
    chart: Chart, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart, values)
    assert where in str(info.value)
