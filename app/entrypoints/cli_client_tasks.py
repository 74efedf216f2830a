"""`agent-service tasks submit|list|show|follow|cancel|answer`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.entrypoints.cli_client_render import NoAnswer, show

if TYPE_CHECKING:
    from agent_service_client import Client


def add_task_commands(tasks: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    from app.entrypoints.cli_client import add_run_options

    actions = tasks.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", parents=[parent], help="submit a background task")
    submit.add_argument("agent")
    submit.add_argument("input")
    submit.add_argument("--follow", action="store_true", help="then follow it to its end")
    add_run_options(submit)
    submit.add_argument(
        "--idempotency-key", help="submitting again with the same key returns the same task"
    )
    listing = actions.add_parser("list", parents=[parent], help="your tasks, newest first")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int)
    for name, what in (
        ("show", "a task's record (and its result once finished)"),
        ("follow", "stream a task's events, answering its questions at the prompt"),
        ("cancel", "cancel a task"),
    ):
        actions.add_parser(name, parents=[parent], help=what).add_argument("task_id")
    answer = actions.add_parser(
        "answer", parents=[parent], help="answer the question a task is waiting on"
    )
    answer.add_argument("task_id")
    answer.add_argument("value", help="the answer; y/n (true/false) for a confirm question")
    answer.add_argument("--request-id", help="default: the question the task is waiting on")


def run_task_command(client: Client, args: argparse.Namespace) -> int:
    from app.entrypoints.cli_client import print_json

    action = args.action
    if action == "submit":
        submitted = client.submit_task(args.agent, args.input, idempotency_key=args.idempotency_key)
        print_json(submitted)
        return _follow(client, submitted["task_id"]) if args.follow else 0
    if action == "list":
        print_json(client.list_tasks(status=args.status, limit=args.limit))
        return 0
    if action == "show":
        task = client.get_task(args.task_id)
        result = client.get_task_result(args.task_id)
        print_json({**task, "result": None if result is None else result.model_dump(mode="json")})
        return 0
    if action == "follow":
        return _follow(client, args.task_id)
    if action == "cancel":
        print_json(client.cancel_task(args.task_id))
        return 0
    return _answer(client, args)


def _follow(client: Client, task_id: str) -> int:
    """The task's events to its end; Ctrl-C stops following (the task goes on)."""

    def answer(request_id: str, value: str | bool) -> object:
        return client.answer_task(task_id, request_id, value)

    try:
        outcome, _ = show(client.follow_task(task_id), answer)
    except NoAnswer:
        sys.stderr.write(f"\nstdin ended; task {task_id} is still waiting for an answer\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"\nstopped following; task {task_id} goes on\n")
        return 130
    return 0 if outcome == "completed" else 1


def _answer(client: Client, args: argparse.Namespace) -> int:
    from app.entrypoints.cli_client import print_json

    pending = client.get_task(args.task_id).get("pending_input") or {}
    request_id = args.request_id or pending.get("request_id")
    if request_id is None:
        sys.stderr.write(f"error: task {args.task_id} is not waiting for an answer\n")
        return 1
    value: str | bool = args.value
    if pending.get("kind") == "confirm":
        if args.value.lower() not in ("y", "yes", "true", "n", "no", "false"):
            sys.stderr.write("error: this question takes y or n\n")
            return 2
        value = args.value.lower() in ("y", "yes", "true")
    print_json(client.answer_task(args.task_id, request_id, value))
    return 0
