"""Structured input: an agent with an input model (tests/support/structured_agents.py, served
through AGENTS) takes an object on every path (invoke, stream, WebSocket, background task),
validated before anything is created; text agents keep taking text. Both store backends.

The WebSocket tests drive the app with Starlette's TestClient (httpx's ASGITransport cannot
upgrade).
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.exceptions import StarletteDeprecationWarning

from app.agents.protocol import input_schema_for
from app.core.config import Settings
from app.main import create_app
from app.security.principals import Principal
from app.services import build_services
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, app_client, login
from tests.integration.test_auth_api import assert_problem
from tests.support.redis_server import RedisServer
from tests.support.sse import parse_lines
from tests.support.structured_agents import Stop

with warnings.catch_warnings():  # its notice that httpx2 will replace httpx; httpx serves
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

Auth = dict[str, str]
AGENT = "trip-planner"
TRIP = {
    "traveller": "Ada",
    "stops": [{"city": "Lisbon", "nights": 2}, {"city": "Porto", "nights": 1}],
}
ANSWER = "Trip for Ada: Lisbon x2, Porto x1 = 3 nights"
# Each bad field, and where the 422 says it is.
BAD_TRIP = {"stops": [{"city": "Lisbon", "nights": 0}, {"city": "", "nights": 2}]}
BAD_FIELDS = ["stops.0.nights", "stops.1.city", "traveller"]


def _settings(
    make_settings: SettingsFactory, backend: str, redis_server: RedisServer, **extra: Any
) -> Settings:
    overrides: dict[str, Any] = {
        "AGENTS": ["tests.support.structured_agents:trip_planner"],
        "RATE_LIMIT_ENABLED": False,  # the tests poll; rate limiting has its own tests
        "TASK_LEASE_SECONDS": 3,
        "WORKER_SHUTDOWN_GRACE_SECONDS": 0.2,
    }
    if backend == "redis":
        redis_server.start()
        overrides["REDIS_URL"] = redis_server.url
    return make_settings(**overrides, **extra)


@pytest.fixture(params=["memory", "redis"])
async def served(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, redis_server: RedisServer
) -> AsyncIterator[AppClient]:
    async with app_client(_settings(make_settings, request.param, redis_server)) as client:
        yield client


async def _auth(client: httpx.AsyncClient) -> Auth:
    return {"Authorization": f"Bearer {await login(client)}"}


async def _totals(client: httpx.AsyncClient, auth: Auth) -> tuple[int, int, int]:
    """How many runs, tasks and sessions the caller has."""
    counts = []
    for path in ("/v1/runs", "/v1/tasks", "/v1/sessions"):
        response = await client.get(path, headers=auth)
        assert response.status_code == 200, response.text
        counts.append(response.json()["total"])
    return counts[0], counts[1], counts[2]


def _bad_fields(problem: dict[str, Any], prefix: list[str]) -> list[str]:
    """The fields the errors name, under ``prefix`` (which every error's loc starts with)."""
    assert all(error["loc"][: len(prefix)] == prefix for error in problem["errors"])
    return sorted(".".join(map(str, error["loc"][len(prefix) :])) for error in problem["errors"])


async def test_discovery_shows_the_input_model_and_text_agents_keep_text(
    served: AppClient,
) -> None:
    auth = await _auth(served)
    schema = (await served.get(f"/v1/agents/{AGENT}", headers=auth)).json()["input_schema"]
    assert schema["type"] == "object" and schema["required"] == ["input"]
    trip = schema["properties"]["input"]
    assert trip["type"] == "object" and sorted(trip["required"]) == ["stops", "traveller"]
    stop = trip["properties"]["stops"]["items"]  # the nested model, written out in place
    assert stop["properties"]["nights"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 30,
        "title": "Nights",
    }
    assert stop["properties"]["city"]["description"] == "Where the traveller stays."
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    listed = {a["name"]: a for a in (await served.get("/v1/agents", headers=auth)).json()["items"]}
    assert listed[AGENT]["input_schema"] == schema
    assert listed["chat"]["input_schema"]["properties"]["input"]["type"] == "string"


class _Folder(BaseModel):
    name: str
    children: list[_Folder] = []


class _Settings(BaseModel):
    default: Stop  # a field whose name is a JSON Schema keyword
    folder: _Folder


def test_a_recursive_model_keeps_only_its_own_definition_at_the_top() -> None:
    schema = input_schema_for(_Settings)
    settings = schema["properties"]["input"]
    assert settings["properties"]["default"]["properties"]["city"]["type"] == "string"
    # Written out once in place; only the reference to itself points at the top's $defs.
    folder = settings["properties"]["folder"]
    assert folder["properties"]["name"]["type"] == "string"
    assert folder["properties"]["children"]["items"] == {"$ref": "#/$defs/_Folder"}
    assert list(schema["$defs"]) == ["_Folder"]
    kept = schema["$defs"]["_Folder"]["properties"]["children"]["items"]
    assert kept == {"$ref": "#/$defs/_Folder"}


async def test_invoke_with_an_object_runs_the_agent_on_the_validated_model(
    served: AppClient,
) -> None:
    auth = await _auth(served)
    response = await served.post(f"/v1/agents/{AGENT}/invoke", json={"input": TRIP}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == ANSWER
    run = (await served.get(f"/v1/runs/{body['run_id']}", headers=auth)).json()
    assert run["input"] == TRIP and run["status"] == "completed"
    messages = await served.get(f"/v1/sessions/{body['session_id']}/messages", headers=auth)
    user, assistant = messages.json()["items"]
    # The user turn is the object's compact JSON (validated: defaults filled in).
    assert user["content"] == json.dumps({**TRIP, "with_car": False}, separators=(",", ":"))
    assert assistant["content"] == ANSWER


async def test_a_string_holding_a_json_object_is_accepted_and_kept_as_sent(
    served: AppClient,
) -> None:
    auth = await _auth(served)
    text = json.dumps({**TRIP, "with_car": True})
    response = await served.post(f"/v1/agents/{AGENT}/invoke", json={"input": text}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["output"] == ANSWER + " by car"
    run = (await served.get(f"/v1/runs/{response.json()['run_id']}", headers=auth)).json()
    assert run["input"] == text


async def test_stream_with_an_object(served: AppClient) -> None:
    auth = await _auth(served)
    response = await served.post(f"/v1/agents/{AGENT}/stream", json={"input": TRIP}, headers=auth)
    assert response.status_code == 200, response.text
    frames = [f for f in parse_lines(iter(response.text.splitlines())) if f.event]
    assert [f.event for f in frames] == ["run_started", "token", "message", "run_completed"]
    assert frames[-1].json["output"] == ANSWER
    run = (await served.get(f"/v1/runs/{response.headers['x-run-id']}", headers=auth)).json()
    assert run["input"] == TRIP


@pytest.mark.parametrize("route", ["invoke", "stream"])
async def test_an_invalid_object_is_422_listing_each_bad_field_and_creates_nothing(
    served: AppClient, route: str
) -> None:
    auth = await _auth(served)
    response = await served.post(
        f"/v1/agents/{AGENT}/{route}", json={"input": BAD_TRIP}, headers=auth
    )
    problem = assert_problem(response, 422, "validation_error")
    assert _bad_fields(problem, ["body", "input"]) == BAD_FIELDS
    assert problem["detail"].startswith("body.input.")
    assert await _totals(served, auth) == (0, 0, 0)


@pytest.mark.parametrize(
    ("agent", "given", "says"),
    [
        (AGENT, "Plan a trip to Lisbon", "takes an object"),  # text that is not JSON
        (AGENT, json.dumps([TRIP]), "takes an object"),  # JSON, but not an object
        ("chat", {"question": "hi"}, "takes text"),  # an object for a text agent
    ],
)
async def test_the_wrong_kind_of_input_is_422_and_creates_nothing(
    served: AppClient, agent: str, given: Any, says: str
) -> None:
    auth = await _auth(served)
    for path, body in (
        (f"/v1/agents/{agent}/invoke", {"input": given}),
        ("/v1/tasks", {"agent": agent, "input": given}),
    ):
        problem = assert_problem(
            await served.post(path, json=body, headers=auth), 422, "validation_error"
        )
        assert says in problem["detail"] and problem["errors"][0]["loc"] == ["body", "input"]
    assert await _totals(served, auth) == (0, 0, 0)


async def test_the_input_length_limit_applies_to_an_objects_json(
    make_settings: SettingsFactory, redis_server: RedisServer
) -> None:
    settings = _settings(make_settings, "memory", redis_server, MAX_INPUT_CHARS=100)
    async with app_client(settings) as client:
        auth = await _auth(client)
        long_trip = {**TRIP, "traveller": "A" * 60}
        response = await client.post(
            f"/v1/agents/{AGENT}/invoke", json={"input": long_trip}, headers=auth
        )
        assert (
            "at most 100 characters" in assert_problem(response, 422, "validation_error")["detail"]
        )
        fits = await client.post(f"/v1/agents/{AGENT}/invoke", json={"input": TRIP}, headers=auth)
        assert fits.status_code == 200, fits.text


async def _finished(client: httpx.AsyncClient, auth: Auth, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        info: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        if info["status"] in ("completed", "failed", "cancelled"):
            return info
        assert time.monotonic() < deadline, f"the task never finished: {info}"
        await asyncio.sleep(0.02)


async def test_a_task_with_an_object_input(served: AppClient) -> None:
    auth = await _auth(served)
    keyed = {**auth, "Idempotency-Key": "trip-1"}
    submitted = await served.post("/v1/tasks", json={"agent": AGENT, "input": TRIP}, headers=keyed)
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    info = await _finished(served, auth, task_id)
    assert info["status"] == "completed" and info["input"] == TRIP
    result = (await served.get(f"/v1/tasks/{task_id}/result", headers=auth)).json()
    assert result["output"] == ANSWER
    assert (await served.get(f"/v1/runs/{task_id}", headers=auth)).json()["input"] == TRIP

    # The same key and object (its keys in another order) replays; another object does not.
    reordered = {"stops": TRIP["stops"], "traveller": "Ada"}
    again = await served.post("/v1/tasks", json={"input": reordered, "agent": AGENT}, headers=keyed)
    assert again.status_code == 202 and again.json()["task_id"] == task_id
    assert again.headers["idempotent-replayed"] == "true"
    other = {**TRIP, "traveller": "Grace"}
    mismatch = await served.post("/v1/tasks", json={"agent": AGENT, "input": other}, headers=keyed)
    assert_problem(mismatch, 422, "idempotency_key_mismatch")

    bad = await served.post("/v1/tasks", json={"agent": AGENT, "input": BAD_TRIP}, headers=auth)
    problem = assert_problem(bad, 422, "validation_error")
    assert _bad_fields(problem, ["body", "input"]) == BAD_FIELDS
    assert (await _totals(served, auth))[1] == 1  # only the first task


async def test_a_structured_tasks_memory_shows_its_input_once(served: AppClient) -> None:
    """The session keeps the validated model's JSON; the memory view still finds the task's
    own exchange there and shows the history before it, then the input as sent."""
    auth = await _auth(served)
    session = await served.post("/v1/sessions", json={"agent": AGENT}, headers=auth)
    first = await served.post(
        f"/v1/agents/{AGENT}/invoke",
        json={"input": {**TRIP, "traveller": "Grace"}, "session_id": session.json()["id"]},
        headers=auth,
    )
    assert first.status_code == 200, first.text
    submitted = await served.post(
        "/v1/tasks",
        json={"agent": AGENT, "input": TRIP, "session_id": session.json()["id"]},
        headers=auth,
    )
    task_id = submitted.json()["task_id"]
    assert (await _finished(served, auth, task_id))["status"] == "completed"
    memory = (await served.get(f"/v1/tasks/{task_id}/memory", headers=auth)).json()
    turns = [(m["role"], m["content"]) for m in memory["messages"]]
    grace = {**TRIP, "traveller": "Grace", "with_car": False}
    assert turns == [
        ("user", json.dumps(grace, separators=(",", ":"))),
        ("assistant", ANSWER.replace("Ada", "Grace")),
        ("user", json.dumps(TRIP, separators=(",", ":"))),
        ("assistant", ANSWER),
    ]


async def test_a_task_whose_input_no_longer_fits_the_model_fails_clearly(
    served: AppClient,
) -> None:
    """As after a deploy that changed the model: the stored input is validated again when the
    task runs, and the task fails with the field errors instead of running on bad input."""
    auth = await _auth(served)
    record, _ = await served.services.tasks.submit(
        owner=Principal.for_user("admin"),
        agent=AGENT,
        input={"traveller": "Ada", "stops": [{"town": "Lisbon", "nights": 2}]},
        session_id=None,
        max_steps=None,
        params={},
        idempotency_key=None,
    )
    info = await _finished(served, auth, record.id)
    assert info["status"] == "failed" and info["error_code"] == "validation_error"
    assert info["error_message"] == "input.stops.0.city: Field required"
    assert info["input"] == {"traveller": "Ada", "stops": [{"town": "Lisbon", "nights": 2}]}


@pytest.fixture(params=["memory", "redis"])
def socket_app(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, redis_server: RedisServer
) -> Iterator[tuple[TestClient, Auth]]:
    settings = _settings(make_settings, request.param, redis_server)
    with TestClient(create_app(settings, services=build_services(settings))) as client:
        token = client.post(
            "/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def test_the_websocket_takes_an_object_and_refuses_a_bad_one_with_its_fields(
    socket_app: tuple[TestClient, Auth],
) -> None:
    client, auth = socket_app
    with client.websocket_connect(f"/v1/agents/{AGENT}/ws", headers=auth) as socket:
        socket.send_json({"type": "start", "input": BAD_TRIP})
        refused = socket.receive_json()
        assert refused["type"] == "error" and refused["code"] == "validation_error"
        assert _bad_fields(refused, ["input"]) == BAD_FIELDS
        assert refused["message"].startswith("input.")
        # The socket stays open: a good start on it runs.
        socket.send_json({"type": "start", "input": TRIP})
        events = [socket.receive_json()]
        while events[-1]["type"] not in ("run_completed", "error"):
            events.append(socket.receive_json())
    assert events[-1]["type"] == "run_completed" and events[-1]["output"] == ANSWER
    runs = client.get("/v1/runs", headers=auth).json()
    assert runs["total"] == 1 and runs["items"][0]["input"] == TRIP
