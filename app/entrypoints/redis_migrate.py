"""`agent-service redis-migrate`: move a deployment's Redis from the pre-cluster key layout to
the hash-tagged one (docs/decisions.md "Redis topologies"), so users, API keys, sessions and
run logs survive the upgrade.

Run it once, with the service stopped, against the old single Redis (the only topology the
old layout ran on), before starting the new version. Each key is RENAMEd (its value and TTL
kept); keys already in the new layout are left alone, so a second run finds nothing to do.
Transient keys (session locks, waiters, old per-run live keys) are dropped: nothing holds
them while the service is stopped. The old task queue cannot be carried over (its
scheduling state changed shape): with tasks still waiting or running the command refuses,
unless ``--drop-unfinished-tasks``; drain the queue (stop the API, let the workers finish)
first.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.core.config import Settings
from app.core.redis_url import parse_redis_url
from app.store.redis_client import build_redis

# old name (after the prefix) -> new name; the groups are the entity ids.
RENAMES: list[tuple[str, re.Pattern[str], str]] = [
    ("users", re.compile(r"^users:(?P<id>[^{].*)$"), "users:{{{id}}}"),
    ("sign-outs", re.compile(r"^user-signed-out:(?P<id>.+)$"), "users:{{{id}}}:signed-out"),
    ("api keys", re.compile(r"^apikeys:hash:(?P<id>[^{].*)$"), "apikeys:hash:{{{id}}}"),
    ("api keys", re.compile(r"^apikeys:id:(?P<id>[^{].*)$"), "apikeys:id:{{{id}}}"),
    ("sessions", re.compile(r"^sessions:rec:(?P<id>.+)$"), "sessions:{{{id}}}:rec"),
    ("sessions", re.compile(r"^sessions:msgs:(?P<id>.+)$"), "sessions:{{{id}}}:msgs"),
    ("sessions", re.compile(r"^sessions:state:(?P<id>.+)$"), "sessions:{{{id}}}:state"),
    ("sessions", re.compile(r"^sessions:owner:(?P<id>[^{].*)$"), "sessions:owner:{{{id}}}"),
    ("sessions", re.compile(r"^sessions:expiry:(?P<id>[^{].*)$"), "sessions:expiry:{{{id}}}"),
    ("runs", re.compile(r"^run:(?P<id>[^{:]+)$"), "run:{{{id}}}"),
    ("runs", re.compile(r"^run:(?P<id>[^{:]+):events$"), "run:{{{id}}}:events"),
    ("runs", re.compile(r"^run:(?P<id>[^{:]+):seq$"), "run:{{{id}}}:seq"),
    ("idempotency keys", re.compile(r"^tasks:idem:(?P<id>.+)$"), "{{tasks}}:idem:{id}"),
]
TRANSIENT = re.compile(
    r"^(sessions:(lock|queue|ticket):|runs:live:[^{])"  # held only while a process runs
)
OLD_QUEUE = re.compile(r"^tasks:(queue|owners|waiting|waiting:.+|active:.+)$")


class UnfinishedTasks(Exception):
    """The old queue still holds tasks; the message says how many."""


@dataclass
class MigrationReport:
    renamed: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    conflicts: list[str] = field(default_factory=list)  # both names exist: left for a human

    def lines(self) -> list[str]:
        out = [f"{what}: {count} key(s) renamed" for what, count in sorted(self.renamed.items())]
        out.append(f"transient or old-queue keys dropped: {self.dropped}")
        out += [f"left alone (the new name exists too): {key}" for key in self.conflicts]
        return out


async def unfinished_tasks(redis: Redis, prefix: str) -> int:
    waiting = int(await redis.get(f"{prefix}tasks:waiting") or 0)
    pending = 0
    if await redis.exists(f"{prefix}tasks:queue"):
        groups = await redis.xinfo_groups(f"{prefix}tasks:queue")
        pending = sum(int(group["pending"]) + int(group.get("lag") or 0) for group in groups)
    return waiting + pending


async def migrate(
    redis: Redis, prefix: str, *, dry_run: bool = False, drop_unfinished_tasks: bool = False
) -> MigrationReport:
    unfinished = await unfinished_tasks(redis, prefix)
    if unfinished and not drop_unfinished_tasks:
        raise UnfinishedTasks(
            f"the old task queue still holds {unfinished} unfinished task(s): stop the API, "
            "let the workers drain the queue, then run this again (or pass "
            "--drop-unfinished-tasks to abandon them)"
        )
    report = MigrationReport()
    async for raw in redis.scan_iter(match=f"{_glob_escape(prefix)}*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        name = key[len(prefix) :]
        if TRANSIENT.match(name) or OLD_QUEUE.match(name):
            report.dropped += 1
            if not dry_run:
                await redis.delete(key)
            continue
        for what, pattern, template in RENAMES:
            found = pattern.match(name)
            if found is None:
                continue
            target = prefix + template.format(id=found.group("id"))
            if await redis.exists(target):
                report.conflicts.append(key)
            else:
                report.renamed[what] += 1
                if not dry_run:
                    await redis.rename(key, target)
            break
    return report


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def run_command(settings: Settings, *, dry_run: bool, drop_unfinished_tasks: bool) -> int:
    """The CLI verb: one line per kind of key, 1 with a reason when it cannot run."""
    if not settings.REDIS_URL:
        sys.stderr.write("REDIS_URL is not set: there is no Redis to migrate.\n")
        return 2
    if parse_redis_url(settings.REDIS_URL).mode != "single":
        sys.stderr.write(
            "redis-migrate runs against the old single Redis (the old layout never ran on a "
            "cluster): migrate it, then move the data to the new topology.\n"
        )
        return 2
    redis = build_redis(settings)
    try:
        report = await migrate(
            redis,
            settings.REDIS_KEY_PREFIX,
            dry_run=dry_run,
            drop_unfinished_tasks=drop_unfinished_tasks,
        )
    except UnfinishedTasks as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    finally:
        await redis.aclose()
    heading = "would migrate (dry run):" if dry_run else "migrated:"
    sys.stdout.write("\n".join([heading, *report.lines()]) + "\n")
    return 0
