"""URLs fit for a log line (the scheme, host, port and path, never credentials or a query),
and the base URL clients reach the service at."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.requests import HTTPConnection
from starlette.types import Scope


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    # netloc may list several hosts (redis+cluster://a:1,b:2): drop only the userinfo.
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, hosts, parts.path, "", ""))


def public_base_url(scope: Scope, public_url: str | None) -> str:
    """PUBLIC_URL (the address behind the ingress) when set, else the request's own base URL;
    no trailing slash. Absolute URLs in agent cards, MCP metadata and challenges use it."""
    if public_url:
        return public_url.rstrip("/")
    return str(HTTPConnection(scope).base_url).rstrip("/")
