"""Delivering webhooks: one POST to a client's URL, retried with backoff, bounded, never
followed through a redirect, and never on a run's path.

A sender builds a ``Webhook`` (URL, body, headers: a protocol's auth, a later signature) and
either awaits ``deliver`` (in order, from a loop of its own: A2A push notifications) or hands
it to ``submit`` (fire and forget, tracked so shutdown can stop it). Either way the run that
caused it never waits: senders read the run's log, not the run.

What is retried: connection errors, timeouts, 408, 425, 429 and 5xx, ``attempts`` times in
all, with exponential backoff and jitter (a ``Retry-After`` in seconds is honoured up to the
backoff ceiling). Anything else (a 3xx, since redirects are not followed; a 4xx) fails at
once: the receiver said no. URLs are checked before each delivery: http(s) only, and unless
``allow_private``, a host that resolves to a loopback, private, link-local or otherwise
non-public address (outside ``allowed_networks``) is refused, so a client cannot aim the
service at internal endpoints. The host is resolved once and the request goes to the address
that was checked (``Host`` and TLS SNI keep the name), so a name cannot resolve to a public
address for the check and a private one for the connection (DNS rebinding). An attempt is
bounded in time as a whole, and the answer's body is never read (only its status counts).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import structlog

from app.core.lifecycle import raise_if_cancelling

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})
MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0  # a resolver that hangs must not hold a request or a worker
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    attempts: int = 5  # deliveries in all, the first included
    timeout_seconds: float = 10.0  # per attempt (the A2A spec recommends 10-30 s)
    backoff_seconds: float = 0.5  # before the second attempt; doubles after each
    max_backoff_seconds: float = 30.0
    allow_private: bool = False  # loopback, private and link-local targets (tests, one host)
    allowed_networks: tuple[Network, ...] = ()  # non-public networks allowed all the same


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # for log lines: what this delivery is about (never a secret)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    status: int | None = None  # the last HTTP status received, if any
    error: str | None = None  # why it failed: refused_url, http_<status>, an exception name


class UnsafeWebhookUrl(ValueError):
    """The URL may not be called: not http(s), unparseable, or a non-public address."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt goes: the URL with its host replaced by the address that was checked
    (when it was resolved), and the ``Host`` header and TLS server name that keep the name."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, str] = field(default_factory=dict)


async def check_webhook_url(
    url: str, *, allow_private: bool, allowed_networks: tuple[Network, ...] = ()
) -> None:
    """Raise UnsafeWebhookUrl unless the URL is one the service may POST to."""
    await resolve_webhook_url(url, allow_private=allow_private, allowed_networks=allowed_networks)


async def resolve_webhook_url(
    url: str, *, allow_private: bool, allowed_networks: tuple[Network, ...] = ()
) -> Target:
    """The checked target of ``url``, or UnsafeWebhookUrl. Resolves the host with the loop's
    resolver (never blocking the loop); every address it resolves to must be public or in
    ``allowed_networks``, and the first is the one to connect to."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError:
        raise UnsafeWebhookUrl("the URL cannot be parsed") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsafeWebhookUrl("the URL must be http or https, with a host")
    if parsed.username or parsed.password:
        raise UnsafeWebhookUrl("the URL must not carry credentials; use authentication")
    if allow_private:
        return Target(url)
    port = port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed.hostname, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError, UnicodeError):
        raise UnsafeWebhookUrl("the host cannot be resolved") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeWebhookUrl("the host cannot be resolved")
    for address in addresses:
        if not (_is_public(address) or _in(address, allowed_networks)):
            raise UnsafeWebhookUrl("the host resolves to a non-public address")
    return _pinned(parsed, addresses[0], port)


def _pinned(parsed: urllib.parse.SplitResult, address: str, port: int) -> Target:
    hostname = parsed.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    url = urllib.parse.urlunsplit(parsed._replace(netloc=f"{literal}:{port}"))
    host = parsed.netloc.rpartition("@")[2]  # as written, with its port if it had one
    # Connection: close, so a pooled connection made for one name never carries another
    # name's request (two receivers may share an address, each with its own certificate).
    headers = {"Host": host, "Connection": "close"}
    if parsed.scheme == "https":
        return Target(url, headers, {"sni_hostname": hostname})
    return Target(url, headers)


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
        ip = mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


Sleep = Callable[[float], Awaitable[None]]


class WebhookDelivery:
    """One per process (it owns its HTTP client's connection pool)."""

    def __init__(
        self,
        *,
        policy: WebhookPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.policy = policy or WebhookPolicy()
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.timeout_seconds),
            follow_redirects=False,  # a redirect could lead anywhere the URL check refused
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._owns_client = client is None
        self._sleep = sleep
        self._background: set[asyncio.Task[DeliveryResult]] = set()

    async def deliver(self, hook: Webhook) -> DeliveryResult:
        """POST until the receiver answers 2xx, the answer is final, or attempts run out.
        Never raises (but is cancellable)."""
        result = DeliveryResult(delivered=False, attempts=0)
        for attempt in range(1, self.policy.attempts + 1):
            result, retry_after = await self.attempt(hook, attempt)
            if result.delivered or retry_after is None or attempt == self.policy.attempts:
                break
            await self._sleep(self.backoff(attempt, retry_after))
        event = "webhook_delivered" if result.delivered else "webhook_failed"
        log.info(
            event,
            label=hook.label,
            attempts=result.attempts,
            status=result.status,
            error=result.error,
        )
        return result

    def submit(self, hook: Webhook) -> asyncio.Task[DeliveryResult]:
        """Deliver in the background; the caller goes on at once."""
        task = asyncio.create_task(self.deliver(hook), name=f"webhook-{hook.label}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def attempt(self, hook: Webhook, attempt: int) -> tuple[DeliveryResult, float | None]:
        """One POST (the URL checked first): the result, and whether to retry (the
        Retry-After asked for, 0 for none given; None: do not retry). Never raises."""
        policy = self.policy
        try:
            target = await resolve_webhook_url(
                hook.url,
                allow_private=policy.allow_private,
                allowed_networks=policy.allowed_networks,
            )
        except UnsafeWebhookUrl as exc:
            log.warning("webhook_refused", label=hook.label, reason=str(exc))
            return DeliveryResult(False, attempt - 1, error="refused_url"), None  # none sent
        headers = {"Content-Type": "application/json", **hook.headers, **target.headers}
        request = self._client.build_request(
            "POST",
            target.url,
            content=hook.body,
            headers=headers,
            extensions=dict(target.extensions),
        )
        try:
            async with asyncio.timeout(policy.timeout_seconds):  # the whole attempt
                response = await self._client.send(request, stream=True)
                await response.aclose()  # the status is the answer: the body is never read
        except (httpx.HTTPError, TimeoutError) as exc:  # the receiver may come back
            raise_if_cancelling()
            return DeliveryResult(False, attempt, error=type(exc).__name__), 0.0
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(True, attempt, status=status), None
        result = DeliveryResult(False, attempt, status=status, error=f"http_{status}")
        if status in RETRY_STATUSES or status >= 500:
            return result, _retry_after(response.headers.get("Retry-After"))
        return result, None

    def backoff(self, attempt: int, retry_after: float = 0.0) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, 50-100 %
        jitter, at least what the receiver asked for, never past the ceiling."""
        policy = self.policy
        backoff = min(policy.backoff_seconds * 2.0 ** (attempt - 1), policy.max_backoff_seconds)
        jittered = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
        return min(max(jittered, retry_after), policy.max_backoff_seconds)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()


def _retry_after(value: str | None) -> float:
    """Seconds a 429/503 asked to wait (the HTTP-date form is treated as none)."""
    if value is None:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
