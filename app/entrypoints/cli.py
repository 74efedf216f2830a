"""`agent-service serve|worker|api-keys|settings` — the console script."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from app.core.config import Settings
from app.core.settings_loader import ConfigError, load_settings


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.entrypoints.server import DrainingServer
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
        access_log=False,  # it prints query strings; our middleware logs requests
        log_config=None,  # the app configures logging itself
        proxy_headers=True,
        forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
        timeout_graceful_shutdown=settings.SHUTDOWN_STREAM_GRACE_SECONDS + 5,
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


async def _api_keys(settings: Settings, args: argparse.Namespace) -> int:
    from app.security.accounts import create_api_key
    from app.security.scopes import parse_scopes
    from app.services import build_stores
    from app.store.redis_client import build_redis

    if not settings.REDIS_URL:
        sys.stderr.write(
            "REDIS_URL is not set: a key created here would live only in this process.\n"
            "Set REDIS_URL to the Redis the service uses, or create keys with "
            "POST /v1/auth/api-keys on a running service.\n"
        )
        return 2
    redis = build_redis(settings)
    try:
        _, store = build_stores(settings, redis)
        if args.action == "create":
            try:
                scopes = parse_scopes(args.scopes)
            except ValueError as exc:
                sys.stderr.write(f"{exc}\n")
                return 2
            created = await create_api_key(
                store=store, settings=settings, name=args.name, scopes=scopes, created_by="cli"
            )
            out = {**created.record.model_dump(mode="json"), "key": created.plaintext}
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
            sys.stderr.write("Store the key now: it is shown only once.\n")
        elif args.action == "list":
            records = await store.list()
            rows = [record.model_dump(mode="json") for record in records]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            record = await store.revoke(args.key_id)
            if record is None:
                sys.stderr.write(f"no API key with id {args.key_id}\n")
                return 1
            sys.stdout.write(json.dumps(record.model_dump(mode="json"), indent=2) + "\n")
        return 0
    finally:
        await redis.aclose()


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
    actions.add_parser("list")
    revoke = actions.add_parser("revoke")
    revoke.add_argument("key_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    return asyncio.run(_api_keys(settings, args))


if __name__ == "__main__":
    sys.exit(main())
