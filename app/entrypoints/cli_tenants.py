"""`agent-service tenants create|list|get|update|delete` — tenants from the command line.

Like `agent-service users ...` (app/entrypoints/cli.py), it talks to the Redis store the
service uses through the same service (app/security/tenants.py TenantService), not over HTTP:
a change is announced on the invalidation bus, so running processes apply it at once. Output
is the record as JSON; an error is one line on stderr (``error: <code>: <detail>``), exit 1,
and a bad command line exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

    from app.core.config import Settings
    from app.core.errors import AppError
    from app.security.tenants import TenantService
    from app.store.records import TenantPolicy, TenantRecord
    from app.store.tenants import TenantStore


def _agents(value: str) -> list[str]:
    """``a,b`` -> ["a", "b"]; an empty string is the empty list (no agent at all)."""
    return [name.strip() for name in value.split(",") if name.strip()]


# The policy's fields (app/store/records.py TenantPolicy), each set by `--<field-with-dashes>`.
POLICY_FLAGS: dict[str, tuple[Any, str]] = {
    "rate_limit": (str, "requests per principal, e.g. 600/minute"),
    "max_concurrent_runs": (int, "foreground runs at once per principal, 0 = no cap"),
    "max_active_tasks": (int, "tasks queued or running per principal, 0 = no cap"),
    "budget_tokens_per_run": (int, "0 = none"),
    "budget_tokens_per_day": (int, "per principal, 0 = none"),
    "budget_tokens_per_month": (int, "per principal, 0 = none"),
    "budget_usd_per_day": (float, "US dollars per principal (MODEL_PRICES), 0 = none"),
    "budget_usd_per_month": (float, "US dollars per principal, 0 = none"),
    "pool_tokens_per_day": (int, "the whole tenant's, shared by its principals, 0 = none"),
    "pool_tokens_per_month": (int, "the whole tenant's, 0 = none"),
    "allowed_agents": (_agents, "comma list of agents its principals may use ('' = none)"),
}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


class UsageError(Exception):
    """A command line that cannot be acted on (exit 2, like argparse's own errors)."""


def add_tenant_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = commands.add_parser(
        "tenants",
        help="manage tenants (needs REDIS_URL); unset policy fields follow the deployment",
    )
    actions = tenants.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a tenant and its policy")
    create.add_argument("tenant_id", metavar="ID", help="1-32 of a-z, 0-9 and '-'")
    create.add_argument("--name", required=True)
    _add_policy_flags(create)
    actions.add_parser("list", help="every tenant but the default one")
    actions.add_parser("get").add_argument("tenant_id", metavar="ID")
    update = actions.add_parser(
        "update", help="a flag given replaces that field; the others are kept"
    )
    update.add_argument("tenant_id", metavar="ID")
    update.add_argument("--name")
    _add_policy_flags(update)
    update.add_argument(
        "--clear",
        action="append",
        default=[],
        type=lambda value: value.replace("_", "-"),
        choices=[_flag(field)[2:] for field in POLICY_FLAGS],
        metavar="FIELD",
        help="set a policy field back to null (the deployment's setting); repeatable",
    )
    actions.add_parser(
        "delete", help="the tenant, its users and its API keys (refused at once everywhere)"
    ).add_argument("tenant_id", metavar="ID")


def _add_policy_flags(parser: argparse.ArgumentParser) -> None:
    for field, (kind, help_text) in POLICY_FLAGS.items():
        metavar = "N" if kind in (int, float) else ("A,B" if field == "allowed_agents" else None)
        parser.add_argument(_flag(field), dest=field, type=kind, metavar=metavar, help=help_text)


async def run_tenants(settings: Settings, args: argparse.Namespace) -> int:
    import structlog
    from redis.exceptions import RedisError

    from app.core.errors import AppError
    from app.core.settings_loader import ConfigError
    from app.core.urls import without_credentials
    from app.security.invalidation import InvalidationBus
    from app.security.tenants import TenantService
    from app.services import build_stores, build_tenant_store, principal_forgetter
    from app.store.redis_client import build_redis

    # The service's log lines (tenant_deleted, ...) go to stderr: stdout is the JSON answer.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    redis = build_redis(settings)
    try:
        users, api_keys = build_stores(settings, redis)
        service = TenantService(
            store=build_tenant_store(settings, redis),
            users=users,
            api_keys=api_keys,
            # Publishes only: every running process drops its cached view of the tenant.
            bus=InvalidationBus(redis, prefix=settings.REDIS_KEY_PREFIX, check=None),
            on_deleted=principal_forgetter(settings, redis),
        )
        try:
            result = await _act(service, settings, args)
        except UsageError as exc:
            sys.stderr.write(f"agent-service tenants {args.action}: {exc}\n")
            return 2
        except ConfigError as exc:  # a bad AGENTS entry, met checking --allowed-agents
            sys.stderr.write(f"{exc}\n")
            return 2
        except AppError as exc:
            sys.stderr.write(error_line(exc))
            return 1
        except (RedisError, OSError) as exc:
            where = without_credentials(settings.REDIS_URL or "")
            sys.stderr.write(f"error: cannot use Redis at {where}: {type(exc).__name__}\n")
            return 1
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        await redis.aclose()


def error_line(exc: AppError) -> str:
    return f"error: {exc.code}: {exc.detail}\n"


async def _act(service: TenantService, settings: Settings, args: argparse.Namespace) -> Any:
    if args.action == "list":
        return [_row(record) for record in await service.list()]
    if args.action == "get":
        return _row(await service.get(args.tenant_id))
    if args.action == "delete":
        record = await service.get(args.tenant_id)  # what was deleted, as `users delete` shows
        await service.delete(args.tenant_id)
        return _row(record)
    given = {field: getattr(args, field) for field in POLICY_FLAGS}
    given = {field: value for field, value in given.items() if value is not None}
    if args.action == "create":
        policy = _validated_policy(args.name, given)
        _known_agents(settings, given)
        return _row(await service.create(args.tenant_id, name=args.name, policy=policy))
    return _row(await _update(service, settings, args, given))


async def _update(
    service: TenantService, settings: Settings, args: argparse.Namespace, given: dict[str, Any]
) -> TenantRecord:
    """The flags given replace their fields, --clear ones become null, the rest are kept
    (the service replaces the whole policy, as PATCH /v1/tenants/{id} does)."""
    cleared = {clear.replace("-", "_") for clear in args.clear}
    both = sorted(cleared & given.keys())
    if both:
        raise UsageError(f"{_flag(both[0])} and --clear {_flag(both[0])[2:]} contradict")
    if args.name is None and not given and not cleared:
        raise UsageError("nothing to change: give --name, a policy flag or --clear FIELD")
    current = await service.get(args.tenant_id)
    policy: TenantPolicy | None = None
    if given or cleared:
        changed = {**current.policy.model_dump(), **given, **dict.fromkeys(cleared)}
        policy = _validated_policy(args.name, changed)
    else:
        _validated_policy(args.name, {})  # the name alone
    _known_agents(settings, given)
    return await service.update(args.tenant_id, name=args.name, policy=policy)


def _row(record: TenantRecord) -> dict[str, object]:
    return record.model_dump(mode="json")


def _validated_policy(name: str | None, policy: dict[str, Any]) -> TenantPolicy:
    """The policy (and the name) checked as the API checks a body: the rate limit parses,
    counts are >= 0, a name has 1-200 characters; else Unprocessable `validation_error`
    naming the flag."""
    from pydantic import ValidationError

    from app.api.schemas.tenants import TenantPolicyBody, TenantUpdate
    from app.core.errors import Unprocessable

    try:
        body = TenantUpdate(name=name, policy=TenantPolicyBody(**policy))
    except ValidationError as exc:
        raise Unprocessable(_first_problem(exc), code="validation_error") from None
    return (body.policy or TenantPolicyBody()).record()


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    fields = [str(part) for part in error["loc"] if part != "policy"]
    where = _flag(fields[0]) if fields else "policy"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def _known_agents(settings: Settings, given: dict[str, Any]) -> None:
    """Agents the deployment serves (built-in and AGENTS), as the API checks them."""
    if given.get("allowed_agents") is None:
        return
    from app.agents.registry import build_registry
    from app.core.errors import Unprocessable

    served = {agent.name for agent in build_registry(settings.AGENTS).all()}
    unknown = sorted(set(given["allowed_agents"]) - served)
    if unknown:
        raise Unprocessable(
            f"No agent named {', '.join(map(repr, unknown))} is served here.",
            code="unknown_agent",
        )


async def require_tenant(store: TenantStore, tenant_id: str | None) -> str:
    """The tenant a `users create` / `api-keys create --tenant` acts in: the default one when
    unset, else one that exists (NotFound `tenant_not_found`, as the API answers)."""
    from app.core.errors import NotFound
    from app.security.principals import DEFAULT_TENANT, is_tenant_id

    if tenant_id is None or tenant_id == DEFAULT_TENANT:
        return DEFAULT_TENANT
    if not is_tenant_id(tenant_id) or await store.get(tenant_id) is None:
        raise NotFound(f"No tenant {tenant_id!r}.", code="tenant_not_found")
    return tenant_id
