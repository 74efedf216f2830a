"""`agent-service serve|worker|api-keys|users|tenants|settings|redis-migrate|run|chat|tasks`
— the console script
(run, chat and tasks are the Python client's verbs: app/entrypoints/cli_client.py; tenants:
app/entrypoints/cli_tenants.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app.core.clock import utcnow
from app.core.config import Settings
from app.core.settings_loader import ConfigError, load_settings
from app.entrypoints.cli_client import CLIENT_COMMANDS, add_client_commands, run_client_command
from app.entrypoints.cli_tenants import add_tenant_commands, require_tenant, run_tenants

if TYPE_CHECKING:
    from app.store.records import UserRecord


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.entrypoints.server import DrainingServer, transport_options
    from app.main import create_app

    try:
        app = create_app(settings)  # built once, from the Settings loaded above
    except ConfigError as exc:  # a bad AGENTS/TOOLS/LLM_PROVIDER entry: one line, no traceback
        sys.stderr.write(f"{exc}\n")
        return 2
    config = uvicorn.Config(
        app,
        host=args.host or settings.HOST,
        port=args.port or settings.PORT,
        log_config=None,  # the app configures logging itself
        proxy_headers=True,
        forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
        timeout_graceful_shutdown=settings.SHUTDOWN_STREAM_GRACE_SECONDS + 5,
        **transport_options(settings),  # request limits, ws_max_size, limit_concurrency
    )
    # Bind before the lifespan runs: a busy port must fail before anything starts (a dev
    # admin password printed for a server that never served would mislead).
    try:
        sock = config.bind_socket()
    except (OSError, SystemExit) as exc:
        sys.stderr.write(f"cannot listen on {config.host}:{config.port}: {exc}\n")
        return 1
    DrainingServer(config).run(sockets=[sock])
    return 0


def _needs_redis(settings: Settings, what: str, route: str) -> bool:
    if settings.REDIS_URL:
        return False
    sys.stderr.write(
        f"REDIS_URL is not set: {what} made here would live only in this process.\n"
        f"Set REDIS_URL to the Redis the service uses, or use {route} on a running service.\n"
    )
    return True


async def _api_keys(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.errors import AppError
    from app.security.accounts import create_api_key, revoke_api_key
    from app.security.invalidation import InvalidationBus
    from app.security.keyring import Keyring
    from app.security.scopes import parse_scopes
    from app.security.users import refuse_admin_outside_default
    from app.services import build_stores, build_tenant_store
    from app.store.redis_client import build_redis

    if _needs_redis(settings, "a key", "POST /v1/auth/api-keys"):
        return 2
    redis = build_redis(settings)
    try:
        _, store = build_stores(settings, redis)
        keys = Keyring(settings)
        # The pepper the service uses, a generated dev key included.
        await keys.load(redis, for_cli=True)
        if args.action == "create":
            try:
                scopes = parse_scopes(args.scopes)
            except ValueError as exc:
                sys.stderr.write(f"{exc}\n")
                return 2
            try:
                tenant = await require_tenant(build_tenant_store(settings, redis), args.tenant)
                refuse_admin_outside_default(tenant, scopes)
            except AppError as exc:
                sys.stderr.write(f"{exc.detail}\n")
                return 1
            created = await create_api_key(
                store=store,
                pepper=keys.api_key_pepper,
                name=args.name,
                scopes=scopes,
                created_by="cli",
                expires_at=_expiry(args.expires_in),
                tenant=tenant,
            )
            out = {**created.record.model_dump(mode="json"), "key": created.plaintext}
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
            sys.stderr.write("Store the key now: it is shown only once.\n")
        elif args.action == "list":
            records = await store.list()
            rows = [record.model_dump(mode="json") for record in records]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            bus = InvalidationBus(redis, prefix=settings.REDIS_KEY_PREFIX, check=None)
            record = await revoke_api_key(store=store, bus=bus, key_id=args.key_id)
            if record is None:
                sys.stderr.write(f"no API key with id {args.key_id}\n")
                return 1
            sys.stdout.write(json.dumps(record.model_dump(mode="json"), indent=2) + "\n")
        return 0
    finally:
        await redis.aclose()


def _expiry(seconds: int | None) -> datetime | None:
    return utcnow() + timedelta(seconds=seconds) if seconds else None


def _read_password() -> str:
    """From a terminal prompt (twice), or the first line of stdin; never an argument, which
    would land in the shell history and the process list."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _users(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.errors import AppError
    from app.security.invalidation import InvalidationBus
    from app.security.passwords import PasswordHasher
    from app.security.scopes import parse_scopes
    from app.security.users import UserService
    from app.services import build_stores, build_tenant_store, principal_forgetter
    from app.store.redis_client import build_redis

    if _needs_redis(settings, "a user", "/v1/auth/users"):
        return 2
    redis = build_redis(settings)
    try:
        users, api_keys = build_stores(settings, redis)
        service = UserService(
            users=users,
            api_keys=api_keys,
            hasher=PasswordHasher(rounds=settings.BCRYPT_ROUNDS, concurrency=1),
            # Publishes only: every running process drops its cached view of the user.
            bus=InvalidationBus(redis, prefix=settings.REDIS_KEY_PREFIX, check=None),
            on_deleted=principal_forgetter(settings, redis),
        )
        try:
            if args.action == "list":
                rows = [_user_row(user) for user in await service.list()]
                sys.stdout.write(json.dumps(rows, indent=2) + "\n")
                return 0
            if args.action == "create":
                scopes = parse_scopes(args.scopes)
                tenant = await require_tenant(build_tenant_store(settings, redis), args.tenant)
                user = await service.create(
                    args.username, password=_read_password(), scopes=scopes, tenant=tenant
                )
            elif args.action == "set-password":
                user = await service.set_password(args.username, _read_password())
            elif args.action == "delete":
                user = await service.delete(args.username)
            else:
                user = await getattr(service, args.action.replace("-", "_"))(args.username)
        except (AppError, ValueError) as exc:
            sys.stderr.write(f"{getattr(exc, 'detail', exc)}\n")
            return 1
        sys.stdout.write(json.dumps(_user_row(user), indent=2) + "\n")
        return 0
    finally:
        await redis.aclose()


def _user_row(user: UserRecord) -> dict[str, object]:
    return user.model_dump(mode="json", exclude={"password_hash"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API with uvicorn (development)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    reference = commands.add_parser("settings", help="print the settings reference")
    reference.add_argument("--format", choices=["env", "markdown"], default="env")

    commands.add_parser("worker", help="run background tasks (needs REDIS_URL)")

    keys = commands.add_parser("api-keys", help="manage API keys (needs REDIS_URL)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", nargs="+", required=True)
    create.add_argument("--expires-in", type=int, metavar="SECONDS", help="unset = never")
    create.add_argument("--tenant", metavar="ID", help="the key's tenant (unset = default)")
    actions.add_parser("list")
    revoke = actions.add_parser("revoke")
    revoke.add_argument("key_id")

    users = commands.add_parser(
        "users",
        help="manage users (needs REDIS_URL); passwords are read from the terminal or stdin",
    )
    user_actions = users.add_subparsers(dest="action", required=True)
    create_user = user_actions.add_parser("create")
    create_user.add_argument("username")
    create_user.add_argument("--scopes", nargs="+", required=True)
    create_user.add_argument(
        "--tenant", metavar="ID", help="the user's tenant: signs in as ID/USERNAME"
    )
    user_actions.add_parser("list")
    for action in ("disable", "enable", "delete", "set-password", "revoke-tokens"):
        user_actions.add_parser(action).add_argument("username")
    add_tenant_commands(commands)
    migrate = commands.add_parser(
        "redis-migrate", help="move an older version's Redis keys to the cluster-safe layout"
    )
    migrate.add_argument("--dry-run", action="store_true", help="count, change nothing")
    migrate.add_argument("--drop-unfinished-tasks", action="store_true")
    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:  # a client of a running service: no server settings
        return run_client_command(args)
    if args.command == "settings":
        from app.core.settings_docs import env_example, markdown_table

        sys.stdout.write(env_example() if args.format == "env" else markdown_table())
        return 0
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "worker":
        # One process: multiprocess metric files (set for the API image) would only leave
        # stale values behind across container restarts. Must happen before the import.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        from app.entrypoints.worker_main import main as worker_main

        return worker_main(settings)
    if args.command == "users":
        return asyncio.run(_users(settings, args))
    if args.command == "tenants":
        if _needs_redis(settings, "a tenant", "/v1/tenants"):
            return 2
        return asyncio.run(run_tenants(settings, args))
    if args.command == "redis-migrate":
        from app.entrypoints.redis_migrate import run_command

        return asyncio.run(
            run_command(
                settings, dry_run=args.dry_run, drop_unfinished_tasks=args.drop_unfinished_tasks
            )
        )
    return asyncio.run(_api_keys(settings, args))


if __name__ == "__main__":
    sys.exit(main())
