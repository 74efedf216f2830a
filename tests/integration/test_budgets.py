"""Token budgets and the usage ledger (GET /v1/usage, /v1/usage/budget), in-process against the
memory stores and a real Redis: what a principal's calls used is recorded by day, agent,
model and cache status; a spent budget refuses new runs and tasks (429 budget_exhausted with
the reset); a budget reached during a run stops it cleanly, `incomplete` with what it
produced; concurrent runs cannot overspend together (the two-process bound is in
tests/e2e/test_budgets_processes.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.conftest import (
    REDIS_TOPOLOGIES,
    AppClient,
    SettingsFactory,
    app_client,
    redis_url_for,
)
from tests.integration.test_auth_api import assert_problem
from tests.integration.test_tasks_api import admin as _admin
from tests.integration.test_tasks_api import api_key as _key
from tests.support.sse import parse_lines

Auth = dict[str, str]
QUICK = {
    "OFFLINE_LATENCY_MS": 0,
    "OFFLINE_TOKENS_PER_SECOND": 0,
    "OFFLINE_RESPONSE_TOKENS": 40,
    "RATE_LIMIT_ENABLED": False,
}


def _settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str, **values: Any
) -> Settings:
    overrides: dict[str, Any] = {**QUICK, **values}
    if topology != "memory":
        overrides["REDIS_URL"] = redis_url_for(request, topology)
    return make_settings(**overrides)


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> AsyncIterator[AppClient]:
    async with app_client(_settings(request, make_settings, topology)) as http:
        yield http


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def _usage(client: httpx.AsyncClient, auth: Auth, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/usage", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _invoke(client: httpx.AsyncClient, auth: Auth, text: str) -> httpx.Response:
    return await client.post("/v1/agents/chat/invoke", json={"input": text}, headers=auth)


# --- the ledger -------------------------------------------------------------------------------


async def test_usage_is_recorded_by_day_agent_model_and_cache(client: AppClient) -> None:
    admin = await _admin(client)
    text = f"What is a ledger? {uuid.uuid4().hex[:8]}"
    first = await _invoke(client, admin, text)
    again = await _invoke(client, admin, text)  # answered from the LLM cache
    assert first.status_code == again.status_code == 200
    assert again.headers["x-cache"] == "HIT"
    used = first.json()["usage"]

    async def both_recorded() -> dict[str, Any] | None:
        report = await _usage(client, admin, group_by=["cached"])
        return report if report["total"]["calls"] == 2 else None

    report = await _until(both_recorded, "the two calls in the ledger")
    by_cache = {item["cached"]: item for item in report["items"]}
    assert by_cache[False]["prompt_tokens"] == used["prompt_tokens"]
    assert by_cache[False]["completion_tokens"] == used["completion_tokens"]
    assert by_cache[False]["billable_tokens"] == used["total_tokens"]
    assert by_cache[True]["calls"] == 1 and by_cache[True]["billable_tokens"] == 0
    assert report["total"]["billable_tokens"] == used["total_tokens"]
    today = datetime.now(UTC).date().isoformat()
    grouped = await _usage(client, admin)  # default: day, agent, model
    [row] = grouped["items"]
    assert row["day"] == today and row["agent"] == "chat" and row["model"] == "offline"
    assert row["calls"] == 2 and report["from"] == report["to"] == today
    budget = (await client.get("/v1/usage/budget", headers=admin)).json()
    assert budget["day"]["spent"] == used["total_tokens"] and budget["day"]["limit"] == 0
    assert budget["day"]["remaining"] is None and budget["run_limit"] == 0


async def test_admins_read_everyones_usage_and_others_only_their_own(client: AppClient) -> None:
    admin = await _admin(client)
    key = await _key(client, admin, "agents:run", "tasks:write")
    for auth in (admin, key):
        assert (await _invoke(client, auth, f"hello {uuid.uuid4().hex[:8]}")).status_code == 200

    async def both() -> dict[str, Any] | None:
        report = await _usage(client, admin, principal="*", group_by=["principal"])
        return report if len(report["items"]) == 2 else None

    report = await _until(both, "both principals' usage")
    principals = {item["principal"] for item in report["items"]}
    me = (await client.get("/v1/auth/me", headers=key)).json()["id"]
    assert principals == {"user:admin", me}
    own = await _usage(client, key, group_by=["principal"])
    assert [item["principal"] for item in own["items"]] == [me]
    for params in ({"principal": "user:admin"}, {"principal": "*"}):
        answer = await client.get("/v1/usage", params=params, headers=key)
        assert_problem(answer, 403, "insufficient_scope")
    today = datetime.now(UTC).date()
    for params in (
        {"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()},
        {"from": (today - timedelta(days=400)).isoformat()},
        {"group_by": "colour"},
        {"from": "yesterday"},
    ):
        answer = await client.get("/v1/usage", params=params, headers=key)
        assert_problem(answer, 422, "validation_error")


# --- budgets ----------------------------------------------------------------------------------


async def test_a_spent_daily_budget_refuses_runs_and_tasks_until_it_resets(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    settings = _settings(request, make_settings, topology, BUDGET_TOKENS_PER_DAY=120)
    async with app_client(settings) as client:
        admin = await _admin(client)
        key = await _key(client, admin, "agents:run", "tasks:write")
        outcomes = []
        for n in range(6):
            answer = await _invoke(client, key, f"tell me something {n} {uuid.uuid4().hex}")
            outcomes.append(answer)
            if answer.status_code == 429 and answer.json()["code"] == "budget_exhausted":
                break
        refused = outcomes[-1]
        problem = assert_problem(refused, 429, "budget_exhausted")
        reset = datetime.fromisoformat(problem["reset_at"])
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
        assert reset.date() == tomorrow and reset.hour == reset.minute == 0
        assert 0 < int(refused.headers["retry-after"]) <= 86_400
        assert problem["window"] == "day" and problem["limit"] == 120
        # Spent up to what is left for a call (the rest too small for one: closed).
        assert 60 <= problem["spent"] <= 120 + 60
        # What ran before: completed, or stopped at the budget mid-answer (incomplete).
        codes = [a.json().get("code") for a in outcomes[:-1] if a.status_code != 200]
        assert set(codes) <= {"budget_exceeded"}
        budget = (await client.get("/v1/usage/budget", headers=key)).json()
        assert budget["day"]["remaining"] == 0 and budget["day"]["limit"] == 120
        # One call's worth at most past the budget: the call that took its last tokens.
        assert budget["day"]["spent"] <= 120 + 60
        task = await client.post("/v1/tasks", json={"agent": "chat", "input": "later"}, headers=key)
        assert_problem(task, 429, "budget_exhausted")
        # Another principal's budget is its own.
        assert (await _invoke(client, admin, "and me?")).status_code == 200


async def test_a_budget_reached_mid_stream_stops_the_run_incomplete_keeping_its_output(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    settings = _settings(
        request, make_settings, topology, BUDGET_TOKENS_PER_RUN=40, OFFLINE_RESPONSE_TOKENS=200
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        response = await client.post(
            "/v1/agents/chat/stream", json={"input": "a long story, please"}, headers=admin
        )
        assert response.status_code == 200
        frames = list(parse_lines(iter(response.text.splitlines())))
        tokens = [f.json["text"] for f in frames if f.event == "token"]
        assert 0 < len(tokens) < 200  # cut at the budget, mid-answer
        last = frames[-1]
        assert last.event == "error" and last.json["code"] == "budget_exceeded"
        run = (await client.get(f"/v1/runs/{response.headers['x-run-id']}", headers=admin)).json()
        assert run["status"] == "incomplete" and run["error_code"] == "budget_exceeded"
        assert run["output"] == "".join(tokens)  # what it produced is kept
        assert run["usage"]["total_tokens"] <= 40 + 10  # the prompt estimate's margin
        invoked = await _invoke(client, admin, "another long story")
        problem = assert_problem(invoked, 429, "budget_exceeded")
        assert "per-run" in problem["detail"]


async def test_a_task_stopped_by_its_budget_is_incomplete(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    settings = _settings(
        request,
        make_settings,
        "redis",
        BUDGET_TOKENS_PER_RUN=30,
        OFFLINE_RESPONSE_TOKENS=200,
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        submitted = await client.post(
            "/v1/tasks", json={"agent": "chat", "input": "write at length"}, headers=admin
        )
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["task_id"]

        async def ended() -> dict[str, Any] | None:
            info: dict[str, Any] = (await client.get(f"/v1/runs/{task_id}", headers=admin)).json()
            return info if info["status"] not in ("queued", "running") else None

        info = await _until(ended, "the task's end")
    assert info["status"] == "incomplete" and info["error_code"] == "budget_exceeded"
    assert info["output"] and len(info["output"].split()) < 200


async def test_concurrent_runs_of_one_principal_cannot_overspend_together(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    limit = 300
    settings = _settings(
        request,
        make_settings,
        topology,
        BUDGET_TOKENS_PER_DAY=limit,
        BUDGET_RESERVE_TOKENS=80,  # each call holds ~its prompt + 80: several fit at once
        OFFLINE_RESPONSE_TOKENS=60,
        OFFLINE_TOKENS_PER_SECOND=400,  # the calls overlap
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        key = await _key(client, admin, "agents:run", "tasks:write")
        answers = await asyncio.gather(
            *(_invoke(client, key, f"race {n} {uuid.uuid4().hex}") for n in range(16))
        )
        statuses = {a.status_code for a in answers}
        assert statuses <= {200, 429} and 200 in statuses and 429 in statuses
        budget = (await client.get("/v1/usage/budget", headers=key)).json()
        completed = sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)
    assert budget["day"]["spent"] <= limit
    assert completed <= budget["day"]["spent"]


async def test_usage_reports_cost_at_the_configured_prices(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    prices = {"offline": {"prompt": 3.0, "completion": 15.0}}  # USD per million tokens
    settings = _settings(request, make_settings, "memory", MODEL_PRICES=prices)
    async with app_client(settings) as client:
        admin = await _admin(client)
        text = f"What does it cost? {uuid.uuid4().hex[:8]}"
        used = (await _invoke(client, admin, text)).json()["usage"]
        assert (await _invoke(client, admin, text)).headers["x-cache"] == "HIT"

        async def recorded() -> dict[str, Any] | None:
            report = await _usage(client, admin, group_by=["model", "cached"])
            return report if report["total"]["calls"] == 2 else None

        report = await _until(recorded, "both calls in the ledger")
    expected = (used["prompt_tokens"] * 3.0 + used["completion_tokens"] * 15.0) / 1_000_000
    by_cache = {item["cached"]: item for item in report["items"]}
    assert by_cache[False]["cost_usd"] == pytest.approx(expected)
    assert by_cache[True]["cost_usd"] == 0  # the cache answered: nothing paid upstream
    assert report["total"]["cost_usd"] == pytest.approx(expected)


async def test_a_model_without_a_price_has_no_cost(client: AppClient) -> None:
    admin = await _admin(client)
    assert (await _invoke(client, admin, f"free? {uuid.uuid4().hex[:8]}")).status_code == 200

    async def recorded() -> dict[str, Any] | None:
        report = await _usage(client, admin)
        return report if report["total"]["calls"] else None

    report = await _until(recorded, "the call in the ledger")
    assert report["total"]["cost_usd"] is None and report["items"][0]["cost_usd"] is None


# The offline model at $1,000 per million tokens each way: a token costs exactly $0.001.
PRICES = {"offline": {"prompt": 1000.0, "completion": 1000.0}}


async def test_a_cost_budget_stops_a_run_at_its_price_and_refuses_new_ones(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, topology: str
) -> None:
    settings = _settings(
        request,
        make_settings,
        topology,
        MODEL_PRICES=PRICES,
        BUDGET_USD_PER_DAY=0.1,  # 100 tokens' worth
        OFFLINE_RESPONSE_TOKENS=60,
    )
    async with app_client(settings) as client:
        admin = await _admin(client)
        first = await _invoke(client, admin, "a first question")
        assert first.status_code == 200, first.text  # ~60 tokens + its prompt: $0.07
        second = await _invoke(client, admin, "a second question")
        assert_problem(second, 429, "budget_exceeded")  # stopped at the budget mid-answer
        run = (await client.get(f"/v1/runs/{second.headers['x-run-id']}", headers=admin)).json()
        assert run["status"] == "incomplete" and run["output"]
        assert "cost budget" in run["error_message"]
        # What is left is too small for a call: the next one finds that out (and closes
        # the window), the one after is refused before it starts.
        third = await _invoke(client, admin, "and a third")
        if third.json()["code"] == "budget_exceeded":
            third = await _invoke(client, admin, "and a fourth")
        problem = assert_problem(third, 429, "budget_exhausted")
        assert problem["budget"] == "cost" and problem["limit_usd"] == pytest.approx(0.1)
        assert "$0.10" in problem["detail"]
        cost = (await client.get("/v1/usage/budget", headers=admin)).json()["cost"]["day"]
    assert cost["limit_usd"] == pytest.approx(0.1)
    # Never past the budget by more than the prompt estimate's error of one call.
    assert cost["spent_usd"] <= 0.1 + 0.01
    used = first.json()["usage"]["total_tokens"] + run["usage"]["total_tokens"]
    assert cost["spent_usd"] == pytest.approx(used * 0.001)


async def test_under_a_cost_budget_a_model_without_a_price_is_refused_clearly(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> None:
    settings = _settings(request, make_settings, "memory", BUDGET_USD_PER_DAY=5.0)
    async with app_client(settings) as client:
        admin = await _admin(client)
        refused = await _invoke(client, admin, "what does this cost?")
        problem = assert_problem(refused, 503, "model_unpriced")
        assert "'offline' has no price in MODEL_PRICES" in problem["detail"]
        run = (await client.get(f"/v1/runs/{refused.headers['x-run-id']}", headers=admin)).json()
        assert run["status"] == "failed"
