"""A Responses body's input items: what cannot be taken is a 400 naming the item, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from app.protocols.openai.errors import InvalidRequest
from app.protocols.openai.responses_request import ResponseCreateRequest, parse_items


def _items(*items: dict[str, Any]) -> list[Any]:
    return parse_items(ResponseCreateRequest(model="chat", input=list(items)))


@pytest.mark.parametrize("role", [{}, [], 3, None, "robot"])
def test_a_role_that_is_not_one_of_ours_is_a_400_naming_it(role: Any) -> None:
    # A dict or a list is no dict key: the membership test itself raised (a 500) before.
    with pytest.raises(InvalidRequest, match=r"input\[0\]\.role must be one of") as caught:
        _items({"type": "message", "role": role, "content": "Hi"})
    assert caught.value.status == 400
    assert caught.value.extensions["errors"][0]["loc"] == ["input", 0, "role"]


@pytest.mark.parametrize("part_type", [{}, ["input_text"], 7, None, "input_image"])
def test_a_content_part_that_is_not_text_is_unsupported_content(part_type: Any) -> None:
    part = {"type": part_type, "text": "Hi"}
    expected = r"input\[0\]\.content\[0\]: only text parts"
    with pytest.raises(InvalidRequest, match=expected) as caught:
        _items({"role": "user", "content": [part]})
    assert caught.value.code == "unsupported_content"
    assert caught.value.extensions["errors"][0]["loc"] == ["input", 0, "content", 0]


def test_text_parts_and_a_plain_message_are_taken() -> None:
    first, second = _items(
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    )
    assert (first.role, first.content) == ("system", "Be brief.")
    assert (second.role, second.content) == ("user", "Hi")


def test_the_schema_states_the_items_and_bounds_the_validators_enforce() -> None:
    schema = ResponseCreateRequest.model_json_schema()["properties"]
    text, items = schema["input"]["anyOf"]
    assert text == {"type": "string", "pattern": r"\S"}
    message, approval = items["items"]["anyOf"]
    assert message["properties"]["role"]["enum"] == ["user", "assistant", "system", "developer"]
    assert approval["required"] == ["type", "approval_request_id", "approve"]
    assert schema["tools"]["maxItems"] == 0
    assert schema["tool_choice"]["anyOf"][0] == {"enum": ["auto", "none"]}
    with pytest.raises(ValueError, match="client-side tools"):
        ResponseCreateRequest(model="chat", input="Hi", tools=[{"type": "function"}])
