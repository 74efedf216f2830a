"""The chart and the three Redis forms of REDIS_URL (one Redis, a cluster, Sentinel): the
schema takes what app/core/redis_url.py accepts, the URL reaches the pods through the Secret,
and a restricted NetworkPolicy egress lets the pods reach every node they will talk to."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import helm_python as helm
import pytest
from helm_python import Chart

from app.core.redis_url import RedisUrlError, parse_redis_url
from tests.deploy.support import (
    CHART_DIR,
    Manifest,
    container,
    deployment,
    loaded_chart,
    one,
    render,
)

CLUSTER_URL = "rediss+cluster://app:s%40cret@redis-0.redis:7000,redis-1.redis:7001,redis-2.redis"
SENTINEL_URL = "redis+sentinel://:s%40cret@sentinel-0:26380,sentinel-1/agents/2"
RESTRICTED = {"egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]}  # the LLM provider
REDIS_PEERS = [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with loaded_chart() as loaded:
        yield loaded


def _egress(objects: list[Manifest]) -> list[Manifest]:
    policy = one(objects, "NetworkPolicy", "agent-service")
    rules: list[Manifest] = policy["spec"].get("egress", [])
    return rules


def _redis_rules(objects: list[Manifest]) -> list[Manifest]:
    """Egress rules other than DNS (53) and the configured LLM rule (443)."""
    return [
        rule
        for rule in _egress(objects)
        if not {port["port"] for port in rule["ports"]} & {53, 443}
    ]


def _ports(rule: Manifest) -> list[int]:
    return [port["port"] for port in rule["ports"]]


def _expected_ports(url: str) -> list[int]:
    """What the app will connect to, by its own parser: every node in the URL and, behind
    sentinels, the data nodes on Redis's default port."""
    target = parse_redis_url(url)
    if target.mode == "single":  # handed to redis-py as it is: read its port the same way
        return [urlsplit(url).port or 6379]
    ports = [port for _, port in target.nodes]
    if target.mode == "sentinel":
        ports.append(6379)
    return list(dict.fromkeys(ports))


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.example.internal:6379/0",
        "rediss://:pw@redis.example.internal:6380/1",
        "redis+cluster://node-a:6379,node-b:6379",
        CLUSTER_URL,
        SENTINEL_URL,
        "rediss+sentinel://sentinel-0:26379,sentinel-1:26379/agents",
    ],
)
def test_each_redis_form_goes_into_the_secret_and_its_ports_into_egress(
    chart: Chart, url: str
) -> None:
    parse_redis_url(url)  # the app accepts it
    objects = render(chart, {"externalRedis": {"url": url}, "networkPolicy": RESTRICTED})
    secret = one(objects, "Secret")
    assert base64.b64decode(secret["data"]["REDIS_URL"]).decode() == url
    [rule] = _redis_rules(objects)
    assert _ports(rule) == _expected_ports(url)
    assert all(port["protocol"] == "TCP" for port in rule["ports"])
    assert "to" not in rule  # discovered nodes: any address on those ports by default


def test_sentinel_egress_reaches_the_sentinels_and_the_data_nodes(chart: Chart) -> None:
    objects = render(chart, {"externalRedis": {"url": SENTINEL_URL}, "networkPolicy": RESTRICTED})
    [rule] = _redis_rules(objects)
    # sentinel-0's own port, sentinel-1's default (26379), the primary they name (6379).
    assert _ports(rule) == [26380, 26379, 6379]


def test_redis_egress_can_be_narrowed_to_the_nodes_range(chart: Chart) -> None:
    values = {
        "externalRedis": {"url": CLUSTER_URL, "egress": {"to": REDIS_PEERS}},
        "networkPolicy": RESTRICTED,
    }
    [rule] = _redis_rules(render(chart, values))
    assert rule["to"] == REDIS_PEERS
    assert _ports(rule) == [7000, 7001, 6379]


def test_explicit_ports_serve_an_existing_secret_and_win_over_the_url(chart: Chart) -> None:
    """With existingSecret the chart cannot read REDIS_URL: the ports are given."""
    values: dict[str, Any] = {
        "existingSecret": "agent-service-secrets",
        "externalRedis": {"egress": {"ports": [7000, 7001, 26379]}},
        "networkPolicy": RESTRICTED,
    }
    [rule] = _redis_rules(render(chart, values))
    assert _ports(rule) == [7000, 7001, 26379]
    values = {
        "externalRedis": {"url": CLUSTER_URL, "egress": {"ports": [6390]}},
        "networkPolicy": RESTRICTED,
    }
    [rule] = _redis_rules(render(chart, values))
    assert _ports(rule) == [6390]


def test_open_egress_gets_no_redis_rule(chart: Chart) -> None:
    objects = render(chart, {"externalRedis": {"url": CLUSTER_URL}})
    policy = one(objects, "NetworkPolicy", "agent-service")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in policy["spec"]


def test_bundled_dev_redis_stays_one_redis(chart: Chart) -> None:
    """The development Redis is one pod reached as redis://; restricted egress reaches it by
    its pods, and no external-Redis rule is added."""
    objects = render(chart, {"redis": {"enabled": True}, "networkPolicy": RESTRICTED})
    assert deployment(objects, "redis")["spec"]["replicas"] == 1
    env = {entry["name"]: entry for entry in container(deployment(objects, "api"))["env"]}
    assert parse_redis_url(env["REDIS_URL"]["value"]).mode == "single"
    [rule] = _redis_rules(objects)
    assert _ports(rule) == [6379]
    assert rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://node-a:6379/0",  # a cluster has database 0 only
        "redis+sentinel://sentinel-0:26379",  # the primary's name is missing
        "redis+sentinel://sentinel-0:26379/agents/zero",
        "http://redis.example.internal",
        "redis+cluster://",
    ],
)
def test_schema_refuses_urls_the_app_refuses(chart: Chart, url: str) -> None:
    with pytest.raises(RedisUrlError):
        parse_redis_url(url)
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart, {"externalRedis": {"url": url}})
    assert "/externalRedis/url" in str(info.value)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"externalRedis": {"egress": {"ports": [0]}}}, "/externalRedis/egress/ports"),
        ({"externalRedis": {"egress": {"ports": ["6379"]}}}, "/externalRedis/egress/ports"),
        ({"externalRedis": {"egress": {"to": {}}}}, "/externalRedis/egress/to"),
        ({"externalRedis": {"egress": {"port": [6379]}}}, "port"),
    ],
)
def test_schema_refuses_bad_egress_values(chart: Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart, values)
    assert where in str(info.value)


def test_chart_lints_clean_with_a_cluster_behind_restricted_egress() -> None:
    values = {
        "externalRedis": {"url": CLUSTER_URL, "egress": {"to": REDIS_PEERS}},
        "networkPolicy": RESTRICTED,
        "worker": {"enabled": True},
        "replicaCount": 2,
    }
    report = helm.lint(CHART_DIR, values, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
