"""What ``REDIS_URL`` names: one Redis, a Redis Cluster, or a Sentinel-watched primary.

Forms (docs/decisions.md "Redis topologies"):

``redis://[user:password@]host:port[/db]``, ``rediss://...`` (TLS), ``unix://...``
    one Redis (the default); handed to redis-py as it is.
``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://`` for TLS)
    a Redis Cluster; the nodes are seeds, the rest is discovered. No database number.
``redis+sentinel://[user:password@]host:port[,host:port...]/<primary name>[/db]``
    (``rediss+sentinel://`` for TLS to the data nodes) the primary the sentinels name; the
    credentials are the data nodes' and the sentinels' both.

The ``+cluster`` and ``+sentinel`` schemes are the ones the ``limits`` package (our rate-limit
engine) already reads, so one setting serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

RedisMode = Literal["single", "cluster", "sentinel"]

_SCHEMES: dict[str, tuple[RedisMode, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}


class RedisUrlError(ValueError):
    """REDIS_URL names no topology we can connect to; the message says what is wrong."""


@dataclass(frozen=True)
class RedisTarget:
    mode: RedisMode
    url: str  # as configured (single mode hands it to redis-py)
    tls: bool = False
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds or sentinels
    primary_name: str | None = None  # sentinel's name of the primary
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def limits_uri(self) -> str:
        """The same target in the ``limits`` package's storage URI form."""
        return "async+" + self.url


def parse_redis_url(url: str) -> RedisTarget:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        known = ", ".join(f"{name}://" for name in _SCHEMES)
        raise RedisUrlError(f"REDIS_URL must start with one of {known}")
    mode, tls = _SCHEMES[scheme]
    if mode == "single":
        return RedisTarget(mode="single", url=url, tls=tls)
    parts = urlsplit(url)
    # urlsplit's hostname/port cannot read a comma-separated host list: split it ourselves.
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    default_port = 26379 if mode == "sentinel" else 6379
    nodes = tuple(_node(item, default_port=default_port) for item in hosts.split(","))
    path = [piece for piece in parts.path.split("/") if piece]
    if mode == "cluster":
        if path:
            raise RedisUrlError(
                "a redis+cluster:// URL takes no path: a cluster has database 0 only"
            )
        return RedisTarget(
            mode="cluster", url=url, tls=tls, nodes=nodes, username=username, password=password
        )
    if not path or len(path) > 2:
        raise RedisUrlError(
            "a redis+sentinel:// URL names the primary: redis+sentinel://host:26379/<name>[/db]"
        )
    db = _db(path[1]) if len(path) == 2 else 0
    return RedisTarget(
        mode="sentinel",
        url=url,
        tls=tls,
        nodes=nodes,
        primary_name=unquote(path[0]),
        db=db,
        username=username,
        password=password,
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _node(item: str, *, default_port: int) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    if not colon:
        host, port = item.strip(), str(default_port)
    host = host.strip("[]")  # an IPv6 literal
    if not host:
        raise RedisUrlError(f"REDIS_URL names a node without a host: {item!r}")
    try:
        number = int(port)
    except ValueError:
        raise RedisUrlError(f"REDIS_URL names a node with a bad port: {item!r}") from None
    if not 0 < number < 65536:
        raise RedisUrlError(f"REDIS_URL names a node with a bad port: {item!r}")
    return host, number


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"the database in REDIS_URL must be a number, not {text!r}")
    return int(text)
