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
non-public address is refused, so a client cannot aim the service at internal endpoints.
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


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    attempts: int = 5  # deliveries in all, the first included
    timeout_seconds: float = 10.0  # per attempt (the A2A spec recommends 10-30 s)
    backoff_seconds: float = 0.5  # before the second attempt; doubles after each
    max_backoff_seconds: float = 30.0
    allow_private: bool = False  # loopback, private and link-local targets (tests, one host)


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


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeWebhookUrl unless the URL is one the service may POST to. Resolves the
    host with the loop's resolver (never blocking the loop)."""
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
        return
    port = port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parsed.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError:
        raise UnsafeWebhookUrl("the host cannot be resolved") from None
    for info in infos:
        if not _is_public(str(info[4][0])):
            raise UnsafeWebhookUrl("the host resolves to a non-public address")


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
        try:
            await check_webhook_url(hook.url, allow_private=self.policy.allow_private)
        except UnsafeWebhookUrl as exc:
            log.warning("webhook_refused", label=hook.label, reason=str(exc))
            return DeliveryResult(delivered=False, attempts=0, error="refused_url")
        result = DeliveryResult(delivered=False, attempts=0)
        for attempt in range(1, self.policy.attempts + 1):
            result, retry_after = await self._attempt(hook, attempt)
            if result.delivered or retry_after is None or attempt == self.policy.attempts:
                break
            await self._sleep(self._delay(attempt, retry_after))
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

    async def _attempt(self, hook: Webhook, attempt: int) -> tuple[DeliveryResult, float | None]:
        """The result, and whether to retry (the Retry-After asked for, 0 for none given)."""
        headers = {"Content-Type": "application/json", **hook.headers}
        try:
            response = await self._client.post(hook.url, content=hook.body, headers=headers)
        except httpx.HTTPError as exc:  # connect, read, timeout: the receiver may come back
            raise_if_cancelling()
            return DeliveryResult(False, attempt, error=type(exc).__name__), 0.0
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(True, attempt, status=status), None
        result = DeliveryResult(False, attempt, status=status, error=f"http_{status}")
        if status in RETRY_STATUSES or status >= 500:
            return result, _retry_after(response.headers.get("Retry-After"))
        return result, None

    def _delay(self, attempt: int, retry_after: float) -> float:
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
