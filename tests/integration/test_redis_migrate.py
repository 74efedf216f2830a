"""`agent-service redis-migrate` carries a deployment's users, API keys, sessions and run logs
from the pre-cluster key names to the hash-tagged ones: after it, the new version finds them."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from app.entrypoints.redis_migrate import UnfinishedTasks, migrate
from tests.conftest import ADMIN_PASSWORD, SettingsFactory, app_client, login
from tests.support import slot_audit
from tests.support.redis_server import RedisServer

# The old layout, written down independently of the migration (docs/architecture.md before
# the cluster change): new name (after the prefix) -> old name.
BACK_TO_OLD = [
    (re.compile(r"^users:\{(?P<id>[^}]+)\}:signed-out$"), "user-signed-out:{id}"),
    (re.compile(r"^users:\{(?P<id>[^}]+)\}$"), "users:{id}"),
    (re.compile(r"^apikeys:(?P<kind>hash|id):\{(?P<id>[^}]+)\}$"), "apikeys:{kind}:{id}"),
    (re.compile(r"^sessions:\{(?P<id>[^}]+)\}:(?P<kind>rec|msgs|state)$"), "sessions:{kind}:{id}"),
    (re.compile(r"^sessions:(?P<kind>owner|expiry):\{(?P<id>[^}]+)\}$"), "sessions:{kind}:{id}"),
    (re.compile(r"^run:\{(?P<id>[^}]+)\}(?P<part>(:events|:seq)?)$"), "run:{id}{part}"),
]


async def _as_the_old_version_left_it(raw: Redis, prefix: str) -> int:
    moved = 0
    async for key in raw.scan_iter(match=f"{prefix}*"):
        name = key[len(prefix) :]
        for pattern, template in BACK_TO_OLD:
            found = pattern.match(name)
            if found:
                await raw.rename(key, prefix + template.format(**found.groupdict()))
                moved += 1
                break
        else:
            if "{" in name and not name.startswith("{tasks}"):
                await raw.delete(key)  # transient, e.g. a live-run key
    return moved


async def test_users_keys_sessions_and_runs_survive_the_upgrade(
    make_settings: SettingsFactory, running_redis: RedisServer, raw_redis: Redis, key_prefix: str
) -> None:
    settings = make_settings(REDIS_URL=running_redis.url, RATE_LIMIT_ENABLED=False)
    async with app_client(settings) as client:
        token = await login(client)
        auth = {"Authorization": f"Bearer {token}"}
        key = (
            await client.post(
                "/v1/auth/api-keys", json={"name": "ci", "scopes": ["agents:run"]}, headers=auth
            )
        ).json()["key"]
        run = await client.post(
            "/v1/agents/chat/invoke", json={"input": "remember me"}, headers=auth
        )
        assert run.status_code == 200, run.text
        run_id, session_id = run.json()["run_id"], run.json()["session_id"]

    assert await _as_the_old_version_left_it(raw_redis, key_prefix) >= 6
    assert not await raw_redis.exists(f"{key_prefix}users:{{admin}}")

    dry = await migrate(raw_redis, key_prefix, dry_run=True)
    assert dry.renamed["users"] == 1 and dry.renamed["runs"] >= 2
    assert await raw_redis.exists(f"{key_prefix}users:admin")  # a dry run changes nothing

    report = await migrate(raw_redis, key_prefix)
    assert report.renamed == dry.renamed and not report.conflicts
    # RENAME across slots is fine here: the migration runs on the old single Redis only.
    slot_audit.take()
    assert (await migrate(raw_redis, key_prefix)).renamed == {}  # a second run: nothing to do

    # ADMIN_PASSWORD unset: a login that works proves the stored user was found, not re-made.
    async with app_client(settings.model_copy(update={"ADMIN_PASSWORD": None})) as client:
        token = await login(client, password=ADMIN_PASSWORD)
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/v1/auth/me", headers={"X-API-Key": key})).status_code == 200
        kept = await client.get(f"/v1/runs/{run_id}", headers=auth)
        assert kept.status_code == 200 and kept.json()["status"] == "completed"
        history = await client.get(f"/v1/sessions/{session_id}/messages", headers=auth)
        assert history.status_code == 200, history.text
        assert "remember me" in history.text


async def test_it_refuses_while_the_old_queue_holds_tasks(
    raw_redis: Redis, key_prefix: str
) -> None:
    await raw_redis.set(f"{key_prefix}tasks:waiting", 2)
    with pytest.raises(UnfinishedTasks, match="2 unfinished"):
        await migrate(raw_redis, key_prefix)
    report = await migrate(raw_redis, key_prefix, drop_unfinished_tasks=True)
    assert report.dropped == 1 and not await raw_redis.exists(f"{key_prefix}tasks:waiting")
