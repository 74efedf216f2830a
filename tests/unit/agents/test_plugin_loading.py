"""AGENTS and TOOLS: what a team plugs in is loaded, checked, and refused in one clear line."""

from __future__ import annotations

import pytest

from app.agents.adapters import agent_name_from
from app.agents.errors import AgentNotFound
from app.agents.registry import AgentRegistry, FunctionAgent, build_registry
from app.agents.tools.loader import build_tool_registry
from app.agents.tools.registry import ToolOutcome
from app.api.schemas.sessions import SessionCreate
from app.api.schemas.tasks import TaskCreate
from app.core.errors import AppError
from app.core.settings_loader import ConfigError
from app.sdk import AGENT_NAME_PATTERN

PLUGINS = "tests.unit.agents.plugins"


async def test_tools_entries_add_decorated_tools_tool_objects_and_lists() -> None:
    registry = build_tool_registry([f"{PLUGINS}:word_count", f"{PLUGINS}:TEXT_TOOLS"], timeout=5)
    assert [tool.name for tool in registry.all()] == [
        "calculator",
        "current_time",
        "reverse",
        "shout",
        "word_count",
    ]
    assert registry.timeout == 5
    word_count = registry.get("word_count")
    assert word_count is not None
    assert word_count.parameters == {
        "additionalProperties": False,
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "type": "object",
    }
    assert await registry.call("word_count", {"text": "one two three"}) == ToolOutcome("3", True)
    assert await registry.call("reverse", {"text": "abc"}) == ToolOutcome("cba", True)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (f"{PLUGINS}:undecorated", "not a Tool, an @tool function or a list of them (decorate"),
        (f"{PLUGINS}:MIXED", "names str 'not a tool'"),
        (f"{PLUGINS}:second_calculator", "tool 'calculator' is already registered"),
        (f"{PLUGINS}:badly_named", "tool name 'has spaces' must match"),
        (f"{PLUGINS}:nothing_here", "has no attribute 'nothing_here'"),
        ("tests.unit.agents.nowhere:x", "cannot import 'tests.unit.agents.nowhere'"),
        ("no-colon", "must look like 'package.module:attribute'"),
    ],
)
def test_a_bad_tools_entry_is_one_config_error_line_naming_the_setting(
    entry: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_tool_registry([entry])
    text = str(caught.value)
    assert text.startswith("TOOLS: ") and repr(entry) in text and message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (f"{PLUGINS}:capitalised", "agent name 'Support' must match"),
        ("tests.support.sample_agents:not_an_agent", "is not an agent: decorate a function"),
        ("Bad Name=tests.support.sample_agents:support", "agent name 'Bad Name' must match"),
        ("tests.support.sample_agents:shouter,", "has no attribute"),
        ("tests.support.nowhere:x", "cannot import"),
        ("no-colon", "must look like 'package.module:attribute'"),
    ],
)
def test_a_bad_agents_entry_is_one_config_error_line_naming_the_setting(
    entry: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_registry([entry])
    text = str(caught.value)
    assert text.startswith("AGENTS: ") and message in text and "\n" not in text


def test_agents_entries_add_agents_next_to_the_built_ins() -> None:
    registry = build_registry([f"{PLUGINS}:word_counter", "tests.support.sample_agents:support"])
    names = [item.name for item in registry.all()]
    assert names == ["approval", "assistant", "chat", "support", "word-counter"]


def test_a_name_in_front_of_an_entry_serves_the_agent_under_that_name() -> None:
    registry = build_registry(["helpdesk=tests.support.sample_agents:support"])
    served = registry.require("helpdesk")
    assert served.name == "helpdesk" and registry.get("support") is None
    assert served.description == registry.require("helpdesk").description


def test_two_entries_taking_one_name_fail_at_start_up_naming_both() -> None:
    first = "tests.support.sample_agents:support"
    second = f"support={PLUGINS}:word_counter"
    with pytest.raises(ConfigError) as caught:
        build_registry([first, second])
    text = str(caught.value)
    assert repr(first) in text and repr(second) in text and "taken twice" in text


def test_a_name_clash_with_a_built_in_names_the_built_in() -> None:
    with pytest.raises(ConfigError, match="by 'built-in'"):
        build_registry(["chat=tests.support.sample_agents:support"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Customer Support", "customer-support"),
        ("LangGraph", "langgraph"),
        ("__start__", "start"),
        ("", "fallback-name"),
        ("x" * 80, "x" * 64),
        ("Café Bot!", "caf-bot"),
    ],
)
def test_a_framework_objects_own_name_is_made_to_fit_the_pattern(raw: str, expected: str) -> None:
    assert agent_name_from(raw, fallback="Fallback Name") == expected


@pytest.mark.parametrize("name", ["Support", "-lead", "has space", "x" * 65, "", "café"])
def test_an_agent_name_must_be_one_the_api_accepts(name: str) -> None:
    chat = build_registry([]).require("chat")
    with pytest.raises(ValueError, match="must match"):
        AgentRegistry().register(FunctionAgent(chat.run, name=name, description="d"))


def test_the_api_request_bodies_use_the_same_agent_name_rule() -> None:
    for body in (SessionCreate, TaskCreate):
        schema = body.model_json_schema()
        assert schema["properties"]["agent"]["pattern"] == AGENT_NAME_PATTERN


def test_require_returns_the_agent_or_raises_agent_not_found() -> None:
    registry = build_registry([])
    assert registry.require("assistant").name == "assistant"
    with pytest.raises(AgentNotFound) as caught:
        registry.require("nope")
    error = caught.value
    assert isinstance(error, AppError)  # the API renders it as problem+json
    assert (error.status, error.code, error.detail) == (
        404,
        "agent_not_found",
        "No agent named 'nope'.",
    )
    assert error.name == "nope"
