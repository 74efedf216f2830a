"""Webhook delivery (app/tasks/webhook_delivery.py) against a real receiver on loopback: what is
retried and what is not, the bound, redirects, and the URL check."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from app.tasks.webhook_delivery import (
    DeliveryResult,
    UnsafeWebhookUrl,
    Webhook,
    WebhookDelivery,
    WebhookPolicy,
    check_webhook_url,
    resolve_webhook_url,
)
from tests.support.a2a_webhooks import WebhookReceiver

LOOPBACK = WebhookPolicy(
    attempts=4, backoff_seconds=0.01, max_backoff_seconds=0.05, allow_private=True
)


class Sleeps:
    """Records the backoff asked for (and does wait it, briefly)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


async def deliver(
    receiver: WebhookReceiver, policy: WebhookPolicy = LOOPBACK
) -> tuple[DeliveryResult, Sleeps]:
    sleeps = Sleeps()
    delivery = WebhookDelivery(policy=policy, sleep=sleeps)
    try:
        hook = Webhook(url=receiver.url, body=b'{"a":1}', headers={"X-Token": "t"}, label="test")
        return await delivery.deliver(hook), sleeps
    finally:
        await delivery.aclose()


async def test_a_failing_receiver_is_retried_with_growing_backoff_until_it_answers() -> None:
    async with WebhookReceiver(statuses=[503, 429, 500]) as receiver:
        result, sleeps = await deliver(receiver)
        got = await receiver.next(timeout=5)
    assert result == DeliveryResult(delivered=True, attempts=4, status=200)
    assert got.headers["x-token"] == "t" and got.json() == {"a": 1}
    assert got.headers["content-type"] == "application/json"
    assert len(sleeps.delays) == 3 and all(0 < d <= 0.05 for d in sleeps.delays)


async def test_retries_are_bounded() -> None:
    async with WebhookReceiver(statuses=[500] * 10) as receiver:
        result, sleeps = await deliver(receiver)
    assert result.delivered is False
    assert result.attempts == 4 and result.error == "http_500"
    assert len(sleeps.delays) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 302])
async def test_a_refusal_or_a_redirect_is_final(status: int) -> None:
    async with WebhookReceiver(statuses=[status]) as receiver:
        result, sleeps = await deliver(receiver)
    assert result.delivered is False and result.attempts == 1
    assert result.status == status and sleeps.delays == []


async def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    async with WebhookReceiver() as receiver:
        url = receiver.url
    delivery = WebhookDelivery(policy=LOOPBACK, sleep=Sleeps())
    try:
        result = await delivery.deliver(Webhook(url=url, body=b"{}"))
    finally:
        await delivery.aclose()
    assert not result.delivered and result.attempts == 4 and result.error == "ConnectError"


async def test_private_targets_are_refused_unless_allowed() -> None:
    async with WebhookReceiver() as receiver:
        result, _ = await deliver(receiver, WebhookPolicy())
        assert receiver.received.empty()
    assert result.error == "refused_url" and result.attempts == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://10.0.0.8/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "ftp://example.com/x",
        "http://user:pass@example.com/x",
        "not a url",
        "http://example.com:99999/x",
    ],
)
async def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        await check_webhook_url(url, allow_private=False)


async def test_a_public_address_passes_and_private_ones_pass_when_allowed() -> None:
    await check_webhook_url("https://93.184.215.14/hook", allow_private=False)
    await check_webhook_url("http://127.0.0.1:9/hook", allow_private=True)


async def test_submit_delivers_in_the_background() -> None:
    async with WebhookReceiver() as receiver:
        delivery = WebhookDelivery(policy=LOOPBACK)
        try:
            task = delivery.submit(Webhook(url=receiver.url, body=b"[]"))
            got = await receiver.next(timeout=5)
            assert (await task).delivered
        finally:
            await delivery.aclose()
    assert got.body == b"[]"


LOOPBACK_NETS = (ipaddress.ip_network("127.0.0.0/8"),)


async def test_an_allowed_network_lets_a_name_through_pinned_to_the_address_checked() -> None:
    target = await resolve_webhook_url(
        "https://localhost:8443/hook?x=1", allow_private=False, allowed_networks=LOOPBACK_NETS
    )
    # localhost may resolve to ::1 first on some hosts: either loopback address is checked.
    assert target.url in ("https://127.0.0.1:8443/hook?x=1", "https://[::1]:8443/hook?x=1")
    assert target.headers == {"Host": "localhost:8443", "Connection": "close"}
    assert target.extensions == {"sni_hostname": "localhost"}
    with pytest.raises(UnsafeWebhookUrl):  # outside the allowed networks
        await check_webhook_url(
            "http://10.0.0.8/x", allow_private=False, allowed_networks=LOOPBACK_NETS
        )


async def test_a_pinned_delivery_reaches_the_receiver_under_the_name_it_was_given() -> None:
    policy = WebhookPolicy(attempts=1, allowed_networks=LOOPBACK_NETS)
    async with WebhookReceiver() as receiver:
        delivery = WebhookDelivery(policy=policy)
        try:
            url = f"http://127.0.0.1.nip.invalid:{receiver.port}/h"  # cannot resolve: refused
            refused = await delivery.deliver(Webhook(url=url, body=b"{}"))
            named = receiver.url.replace("127.0.0.1", "localhost")
            result, retry = await delivery.attempt(Webhook(url=named, body=b"{}"), 1)
            got = await receiver.next(timeout=5)
        finally:
            await delivery.aclose()
    assert refused.error == "refused_url" and refused.attempts == 0
    assert result.delivered and retry is None
    assert got.headers["host"] == f"localhost:{receiver.port}"
