"""OpenAI chat messages -> a run's input and history (app/protocols/openai/messages.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.llm.types import ChatMessage, ToolCall
from app.protocols.openai.errors import InvalidRequest
from app.protocols.openai.messages import OpenAIMessage, split_conversation


def _split(messages: list[dict[str, Any]], limit: int = 50) -> tuple[str, list[ChatMessage]]:
    return split_conversation(
        [OpenAIMessage.model_validate(m) for m in messages], history_limit=limit
    )


def _param(exc: pytest.ExceptionInfo[InvalidRequest]) -> list[Any]:
    return list(exc.value.extensions["errors"][0]["loc"])


def test_the_last_user_message_is_the_input_and_the_rest_the_history() -> None:
    text, history = _split(
        [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "6*7?"}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call-1",
                        "type": "function",
                        "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call-1", "content": "42"},
            {"role": "assistant", "content": "42.", "name": "helper"},
            {"role": "user", "content": "And 6*8?"},
        ]
    )
    assert text == "And 6*8?"
    assert history == [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="What is 6*7?"),
        ChatMessage(
            role="assistant",
            tool_calls=[ToolCall(id="call-1", name="calculator", arguments={"expression": "6*7"})],
        ),
        ChatMessage(role="tool", content="42", tool_call_id="call-1"),
        ChatMessage(role="assistant", content="42.", name="helper"),
    ]


def test_history_keeps_the_latest_messages_without_an_orphaned_tool_answer() -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "t", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "r"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "q"},
    ]
    assert _split(messages, limit=2)[1] == [ChatMessage(role="assistant", content="a")]
    assert len(_split(messages, limit=3)[1]) == 3
    assert _split(messages, limit=0)[1] == []


@pytest.mark.parametrize(
    ("messages", "param", "words"),
    [
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            ["messages", 1, "role"],
            "last message",
        ),
        ([{"role": "user", "content": "  "}], ["messages", 0, "content"], "no text"),
        ([{"role": "user", "content": None}], ["messages", 0, "content"], "no text"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            ["messages", 0, "content", 0],
            "only text parts",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "t", "arguments": "[1]"},
                        }
                    ],
                },
                {"role": "user", "content": "q"},
            ],
            ["messages", 0, "tool_calls", 0, "function", "arguments"],
            "JSON object",
        ),
    ],
)
def test_what_a_run_cannot_take_is_a_400_naming_the_field(
    messages: list[dict[str, Any]], param: list[Any], words: str
) -> None:
    with pytest.raises(InvalidRequest) as exc:
        _split(messages)
    assert exc.value.status == 400
    assert _param(exc) == param
    assert words in exc.value.detail
