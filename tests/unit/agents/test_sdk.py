"""app.sdk is the whole public surface, and the README's examples use nothing else."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import app.agents.events as events_module
import app.sdk as sdk
from app.agents.builtin.streaming import StreamedCall as OldStreamedCall

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
SAMPLE_AGENTS = (ROOT / "tests/support/sample_agents.py").read_text()


def readme_example(first_line: str) -> str:
    """The README's ```python block whose first line starts with ``first_line``."""
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"README has no python example starting {first_line!r}")


def test_every_event_class_and_the_authoring_names_are_exported() -> None:
    event_classes = {
        name
        for name, value in vars(events_module).items()
        if inspect.isclass(value)
        and value.__module__ == events_module.__name__
        and not name.startswith("_")
    }
    wanted = event_classes | {
        "Event",
        "agent",
        "tool",
        "RunContext",
        "StreamedCall",
        "ChatMessage",
        "LLMRequest",
        "ToolError",
        "ToolOutcome",
    }
    assert wanted <= set(sdk.__all__), sorted(wanted - set(sdk.__all__))
    assert all(hasattr(sdk, name) for name in sdk.__all__)
    assert sdk.StreamedCall is OldStreamedCall  # the old import path still works


def test_the_module_docstring_is_a_reference_for_every_export() -> None:
    assert sdk.__doc__ is not None
    undocumented = [name for name in sdk.__all__ if name not in sdk.__doc__]
    assert not undocumented


@pytest.mark.parametrize("first_line", ["# mypkg/agents.py", "# mytools.py"])
def test_readme_examples_import_only_from_the_sdk(first_line: str) -> None:
    tree = ast.parse(readme_example(first_line))
    modules = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    modules += [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    from_app = [name for name in modules if name and name.split(".")[0] == "app"]
    assert from_app and set(from_app) == {"app.sdk"}, modules


def test_the_readme_agent_is_the_sample_agent_under_test_character_for_character() -> None:
    example = readme_example("# mypkg/agents.py")
    body = example.split("\n", 1)[1]  # without the file-name comment
    assert body in SAMPLE_AGENTS
