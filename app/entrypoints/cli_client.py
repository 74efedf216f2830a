"""`agent-service run|chat|tasks`: the service used from a terminal, through the Python
client (clients/python), against a server given by --url and credentials given by
--username/--password, --token or --api-key, each also read from its environment variable.

agent_service_client is imported only when one of these verbs runs: serve and worker do
not need it installed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from app.entrypoints.cli_client_render import NoAnswer, show

if TYPE_CHECKING:
    from agent_service_client import Client

CLIENT_COMMANDS = frozenset({"run", "chat", "tasks"})
DEFAULT_URL = "http://localhost:8000"
# option -> environment variable
ENVIRONMENT = {
    "url": "AGENT_SERVICE_URL",
    "username": "AGENT_SERVICE_USERNAME",
    "password": "AGENT_SERVICE_PASSWORD",
    "token": "AGENT_SERVICE_TOKEN",
    "api_key": "AGENT_SERVICE_API_KEY",
}
INTERRUPTED = 130  # the shell's exit status for Ctrl-C


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server and credentials")
    group.add_argument("--url", help=f"the service (env AGENT_SERVICE_URL; {DEFAULT_URL})")
    group.add_argument("--username", help="sign in as (env AGENT_SERVICE_USERNAME)")
    group.add_argument(
        "--password", help="(env AGENT_SERVICE_PASSWORD; asked at the terminal when unset)"
    )
    group.add_argument("--token", help="a JWT (env AGENT_SERVICE_TOKEN)")
    group.add_argument("--api-key", help="an API key (env AGENT_SERVICE_API_KEY)")
    return parent


def param(text: str) -> tuple[str, Any]:
    """``--param KEY=VALUE``: the value as JSON when it parses (numbers, true), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, e.g. max_tokens=64")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        type=param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an agent parameter, e.g. temperature=0.2 or max_tokens=64 (repeatable)",
    )


def add_client_commands(commands: Any) -> None:
    """The client verbs, on the console script's subcommands."""
    parent = _connection_options()
    run = commands.add_parser(
        "run", parents=[parent], help="run an agent, streaming its answer to the terminal"
    )
    run.add_argument("agent")
    run.add_argument("input")
    run.add_argument("--session", help="continue this session")
    add_run_options(run)
    chat = commands.add_parser(
        "chat", parents=[parent], help="talk with an agent: one session across turns"
    )
    chat.add_argument("agent")
    chat.add_argument("--session", help="continue this session instead of starting one")
    add_run_options(chat)

    from app.entrypoints.cli_client_tasks import add_task_commands

    add_task_commands(commands.add_parser("tasks", help="background tasks"), parent)


def _credentials(args: argparse.Namespace) -> dict[str, str | None]:
    """From the flags when any is given (a flag beats the environment), else from the
    environment; the password may come from the environment either way."""
    names = ("username", "token", "api_key")
    given = {name: getattr(args, name) for name in names}
    if not any(given.values()):
        given = {name: os.environ.get(ENVIRONMENT[name]) or None for name in names}
    password = args.password or os.environ.get(ENVIRONMENT["password"]) or None
    return {**given, "password": password if given["username"] else None}


def connect(args: argparse.Namespace) -> Client:
    from agent_service_client import Client

    credentials = _credentials(args)
    username, password = credentials["username"], credentials["password"]
    if username is not None and password is None:
        if not sys.stdin.isatty():
            raise ValueError("--username needs --password or AGENT_SERVICE_PASSWORD")
        password = getpass.getpass(f"Password for {username}: ")
    url = args.url or os.environ.get(ENVIRONMENT["url"]) or DEFAULT_URL
    return Client(
        url,
        api_key=credentials["api_key"],
        token=credentials["token"],
        username=username,
        password=password,
    )


def run_client_command(args: argparse.Namespace) -> int:
    """Runs a client verb; API and connection errors are one line on stderr."""
    import httpx

    try:
        from agent_service_client import AgentServiceError, ApiError
    except ModuleNotFoundError:
        sys.stderr.write("error: the Python client is not installed: pip install clients/python\n")
        return 2

    try:
        with connect(args) as client:
            if args.command == "run":
                return _run(client, args)
            if args.command == "chat":
                return _chat(client, args)
            from app.entrypoints.cli_client_tasks import run_task_command

            return run_task_command(client, args)
    except ApiError as exc:
        sys.stderr.write(f"error: {exc.status} {exc.code}: {exc.detail}")
        sys.stderr.write(f" (request {exc.request_id})\n" if exc.request_id else "\n")
    except httpx.TransportError as exc:
        sys.stderr.write(f"error: cannot reach the service: {exc!r}\n")
    except (AgentServiceError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
    except KeyboardInterrupt:
        return INTERRUPTED
    return 1


def _turn(client: Client, args: argparse.Namespace, text: str, session_id: str | None) -> int:
    """One run streamed to the terminal; Ctrl-C cancels it (exit 130)."""
    stream = client.stream(args.agent, text, session_id=session_id, params=dict(args.param))
    try:
        outcome, _ = show(stream, stream.answer)
    except (KeyboardInterrupt, NoAnswer) as exc:
        _cancel(client, stream.run_id)  # before the stream closes: closing would cancel too
        if isinstance(exc, NoAnswer):
            sys.stderr.write("error: stdin ended before the question was answered\n")
            return 1
        return INTERRUPTED
    finally:
        stream.close()
    return 0 if outcome == "completed" else 1


def _cancel(client: Client, run_id: str | None) -> None:
    from agent_service_client import ApiError

    if run_id is None:
        return
    try:
        client.cancel_run(run_id)
    except ApiError as exc:
        if exc.status not in (404, 409):  # 404: it ended meanwhile
            raise
    sys.stderr.write(f"\ncancelled run {run_id}\n")


def _run(client: Client, args: argparse.Namespace) -> int:
    return _turn(client, args, args.input, args.session)


def _chat(client: Client, args: argparse.Namespace) -> int:
    session_id = args.session or client.create_session(args.agent)["id"]
    if sys.stdin.isatty():
        import readline  # noqa: F401 - line editing and the up-arrow history of the prompt
    sys.stderr.write(f"session {session_id}; an empty line or Ctrl-D ends the chat\n")
    while True:
        sys.stderr.write("you> ")
        sys.stderr.flush()
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            line = ""
        if not line.strip():
            sys.stderr.write("\n")
            return 0
        if _turn(client, args, line.strip(), session_id) == INTERRUPTED:
            continue  # Ctrl-C ends the turn, not the chat


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
