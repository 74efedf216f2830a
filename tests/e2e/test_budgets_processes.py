"""A principal's token budget across two API processes sharing a private redis-server: runs
started on both at once cannot overspend it together. Each model call holds its tokens in
Redis before it starts (one script), and its answer is capped at what it held, so the
bound is the budget itself, plus at most the error of one call's prompt estimate (the
estimate is generous: in practice nothing)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_tasks_workers import ClusterFactory, _auth
from tests.e2e.test_tasks_workers import cluster as cluster  # the fixture, shared

pytestmark = pytest.mark.e2e

LIMIT = 600


async def _race(urls: list[str], key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, headers={"X-API-Key": key}) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{urls[n % len(urls)]}/v1/agents/chat/invoke",
                    json={"input": f"tell me about budgets {n} {uuid.uuid4().hex}"},
                )
                for n in range(count)
            )
        )


def test_two_processes_cannot_overspend_one_principals_budget(cluster: ClusterFactory) -> None:
    c = cluster(
        BUDGET_TOKENS_PER_DAY=str(LIMIT),
        BUDGET_RESERVE_TOKENS="80",  # each call holds ~its prompt + 80: several fit at once
        OFFLINE_RESPONSE_TOKENS="60",
        OFFLINE_TOKENS_PER_SECOND="300",  # each answer takes ~0.2 s: the calls overlap
        OFFLINE_LATENCY_MS="0",
    )
    first, second = c.api(), c.api()
    admin = _auth(first)
    created = httpx.post(
        f"{first.url}/v1/auth/api-keys",
        json={"name": "spender", "scopes": ["agents:run"]},
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    answers = asyncio.run(_race([first.url, second.url], key, 24))

    statuses = sorted({a.status_code for a in answers})
    assert statuses == [200, 429], [a.text for a in answers if a.status_code not in (200, 429)]
    codes = {a.json()["code"] for a in answers if a.status_code == 429}
    assert codes <= {"budget_exceeded", "budget_exhausted"}
    used = sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)
    budgets: list[dict[str, Any]] = [
        httpx.get(f"{api.url}/v1/usage/budget", headers={"X-API-Key": key}, timeout=10).json()
        for api in (first, second)
    ]
    assert budgets[0]["day"]["spent"] == budgets[1]["day"]["spent"]  # one ledger
    spent = budgets[0]["day"]["spent"]
    assert used <= spent <= LIMIT, (used, spent)
    assert spent > LIMIT // 2  # the budget was used, not refused from the start
