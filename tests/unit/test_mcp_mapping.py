"""The MCP surface's pure mappings: questions as elicitation forms, events as progress lines,
task records as MCP tasks, issuers in the protected-resource metadata, tool names."""

from __future__ import annotations

from typing import Any

import pytest

from app.agents.events import InputRequired, RunStarted, StepEvent, TokenEvent, ToolCallEvent
from app.agents.tools.registry import Tool, ToolRegistry
from app.core.config import Settings
from app.protocols.mcp.catalog import TOOL_PREFIX, registered_tool_name, registry_tool
from app.protocols.mcp.elicitation import requested_schema
from app.protocols.mcp.metadata import issuers, protected_resource
from app.protocols.mcp.progress import describe
from app.protocols.mcp.tasks import task_of
from app.store.run_records import PendingInputInfo, RunRecord, RunStatus


def _answer(event: InputRequired) -> dict[str, Any]:
    schema = requested_schema(event)
    assert schema["required"] == ["answer"] and list(schema["properties"]) == ["answer"]
    answer: dict[str, Any] = schema["properties"]["answer"]
    assert answer["description"] == event.prompt
    return answer


def test_each_kind_of_question_is_a_one_field_form() -> None:
    confirm = _answer(InputRequired(request_id="a", kind="confirm", prompt="Go?"))
    choice = _answer(
        InputRequired(request_id="b", kind="choice", prompt="Which?", choices=["x", "y"])
    )
    text = _answer(InputRequired(request_id="c", kind="text", prompt="Name?"))
    assert confirm["type"] == "boolean"
    assert choice["type"] == "string" and choice["enum"] == ["x", "y"]
    assert text["type"] == "string" and text["minLength"] == 1


def test_events_become_short_progress_lines() -> None:
    assert describe(TokenEvent(text="Hel")) == "Hel"
    assert describe(RunStarted(run_id="r1", agent="chat")) == "[run r1 of chat started]"
    assert describe(StepEvent(number=2, duration_s=0.1)) == "[step 2 done]"
    assert describe(ToolCallEvent(id="t", name="calculator")) == "[calling calculator]"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", "working"),
        ("running", "working"),
        ("paused", "working"),
        ("input_required", "input_required"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
    ],
)
def test_task_statuses_map_onto_the_five_mcp_ones(status: RunStatus, expected: str) -> None:
    record = RunRecord(id="t1", owner="user:a", agent="chat", input="hi", status=status)
    task = task_of(record, ttl_ms=60_000)
    assert task.taskId == "t1" and task.status == expected and task.ttl == 60_000


def test_a_waiting_task_says_what_it_asks() -> None:
    pending = PendingInputInfo(request_id="q", kind="text", prompt="Your name?")
    record = RunRecord(
        id="t2",
        owner="user:a",
        agent="x",
        input="hi",
        status="input_required",
        pending_input=pending,
    )
    assert task_of(record, ttl_ms=1).statusMessage == "Your name?"


def test_the_metadata_lists_every_configured_issuer_once() -> None:
    settings = Settings(
        _env_file=None,
        OIDC_ISSUER="https://a.example.com",
        OIDC_AUDIENCE="api",
        OIDC_PROVIDERS=[],
    )
    assert issuers(settings) == ["https://a.example.com"]
    several = settings.model_copy(
        update={
            "OIDC_ISSUER": None,
            "OIDC_PROVIDERS": [
                {"issuer": "https://b.example.com", "audience": "api"},
                {"issuer": "https://c.example.com", "audience": "api"},
                {"issuer": "https://b.example.com", "audience": "other"},
            ],
        }
    )
    assert issuers(several) == ["https://b.example.com", "https://c.example.com"]
    none = settings.model_copy(update={"OIDC_ISSUER": None, "DOCS_ENABLED": False})
    document = protected_resource(none, "https://agents.example.com")
    assert document.resource == "https://agents.example.com/mcp"
    assert document.authorization_servers is None and document.resource_documentation is None


async def _echo(arguments: dict[str, Any]) -> str:
    return str(arguments)


def test_registered_tools_are_prefixed_and_found_back() -> None:
    registry = ToolRegistry([Tool("echo", "Echoes.", {"type": "object"}, _echo)])
    listed = registry_tool(registry.all()[0])
    assert listed.name == TOOL_PREFIX + "echo" and listed.inputSchema == {"type": "object"}
    assert registered_tool_name(listed.name) == "echo"
    assert registered_tool_name("chat") is None
