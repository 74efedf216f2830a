"""Catches, on a single Redis, what a Redis Cluster would refuse: a Lua script, a MULTI/EXEC
transaction or a multi-key command (MGET, MSET) over keys of two hash slots.

Installed once per test process (tests/conftest.py): it wraps redis-py's asyncio client
and pipeline, records each offending operation with its keys, and the test that caused one
fails at teardown naming it. Every Redis-backed test thus also checks the cluster rule of
app/store/keyspace.py, beside the tests that run against a real cluster. Keys built inside
a Lua script are invisible here; the real cluster catches those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.client import Pipeline, Redis
from redis.crc import key_slot

# Commands whose every argument after the name is a key: one slot even outside a
# transaction (the cluster client sends them whole). DEL, EXISTS, UNLINK and TOUCH are
# split per slot by the cluster client, so they count only inside a transaction.
_ALL_KEYS = {"MGET", "SINTER", "SUNION", "SDIFF", "PFCOUNT", "SINTERCARD"}
_SPLIT_BY_CLIENT = {"DEL", "EXISTS", "UNLINK", "TOUCH", "WATCH"}
_TWO_KEYS = {"RENAME", "RENAMENX", "SMOVE", "RPOPLPUSH", "LMOVE", "BLMOVE", "COPY"}
_NO_KEYS = {
    "MULTI", "EXEC", "DISCARD", "PING", "INFO", "SCRIPT", "PUBLISH", "SPUBLISH", "SUBSCRIBE",
    "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "CLIENT", "SELECT", "HELLO", "AUTH", "TIME",
    "FLUSHALL", "FLUSHDB", "SCAN", "CLUSTER", "CONFIG", "DBSIZE", "READONLY", "ECHO",
    "UNWATCH", "COMMAND", "MEMORY", "XINFO", "FUNCTION", "XREAD", "XREADGROUP",
}  # fmt: skip

violations: list[str] = []
_installed = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def command_keys(args: Sequence[Any], *, in_transaction: bool) -> list[str]:
    """The key arguments of one command that must share a slot."""
    name = _text(args[0]).upper()
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL"):
        count = int(args[2])
        return [_text(key) for key in args[3 : 3 + count] if _text(key)]
    if name in _ALL_KEYS or (in_transaction and name in _SPLIT_BY_CLIENT):
        return [_text(key) for key in args[1:]]
    if name in ("MSET", "MSETNX"):
        return [_text(key) for key in args[1::2]]
    if name in _TWO_KEYS:
        return [_text(key) for key in args[1:3]]
    if name in _NO_KEYS or name in _SPLIT_BY_CLIENT:
        return []
    return [_text(args[1])] if len(args) > 1 and in_transaction else []


def _check(what: str, keys: list[str]) -> None:
    slots = {key_slot(key.encode()) for key in keys}
    if len(slots) > 1:
        violations.append(f"{what} touches {len(slots)} hash slots: {sorted(keys)}")


def install() -> None:
    """Wrap redis-py once per process; idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    plain = Redis.execute_command
    pipelined = Pipeline.execute

    async def execute_command(self: Redis, *args: Any, **options: Any) -> Any:
        if args:
            _check(_text(args[0]).upper(), command_keys(args, in_transaction=False))
        return await plain(self, *args, **options)  # type: ignore[no-untyped-call]

    async def execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        stack = [args for args, _ in self.command_stack]
        if self.is_transaction or self.explicit_transaction:
            keys = [key for args in stack for key in command_keys(args, in_transaction=True)]
            names = ", ".join(_text(args[0]).upper() for args in stack)
            _check(f"MULTI/EXEC [{names}]", keys)
        else:
            for args in stack:
                _check(_text(args[0]).upper(), command_keys(args, in_transaction=False))
        return await pipelined(self, raise_on_error)

    Redis.execute_command = execute_command  # type: ignore[method-assign]
    Pipeline.execute = execute  # type: ignore[method-assign]


def take() -> list[str]:
    """The violations since the last call, cleared."""
    found = list(dict.fromkeys(violations))
    violations.clear()
    return found
