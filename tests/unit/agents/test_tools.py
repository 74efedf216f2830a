"""Built-in tools: the calculator evaluates arithmetic and nothing else."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.agents.tools.builtin import BUILTIN_TOOLS, _format, evaluate
from app.agents.tools.registry import ToolError, ToolOutcome, ToolRegistry


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("1+2", 3), ("12*(3+4)", 84), ("-2**3", -8), ("7/2", 3.5), ("7//2", 3), ("10 % 4", 2)],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "open('/etc/passwd')",
        "(1).__class__",
        "a + 1",
        "[1, 2]",
        "lambda: 1",
        "9**9**9",
        "1/0",
        "1" * 201,
        "",
    ],
)
def test_calculator_refuses_everything_else(expression: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expression)


@given(st.text(max_size=60))
def test_calculator_never_raises_anything_but_tool_error(text: str) -> None:
    try:
        evaluate(text)
    except ToolError:
        pass


async def test_registry_reports_failures_instead_of_raising() -> None:
    registry = ToolRegistry(BUILTIN_TOOLS)
    assert await registry.call("calculator", {"expression": "6*7"}) == ToolOutcome("42", True)
    refused = await registry.call("calculator", {"expression": "import os"})
    assert not refused.success and "not an arithmetic expression" in refused.output
    assert await registry.call("nope", {}) == ToolOutcome("unknown tool 'nope'", False)
    now = await registry.call("current_time", {})
    assert now.success and now.output.startswith("20")
    assert [spec.name for spec in registry.specs()] == ["calculator", "current_time"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(BUILTIN_TOOLS[0])


# Each of these froze the process for seconds (one big-int ** holds the GIL, so neither a
# thread nor a timeout helps) or raised ValueError past 4,300 digits.
HOSTILE = [
    "(((9**99)**99)**99)**5",
    "9**9**9",
    "(10**100)**100",
    "(9**99)**99*(9**99)**99",
    "(10**1500)*(10**1500)*(10**1500)",
    "2**(2**2000)",
    "-(2**9999)*-(2**9999)",
    "2**10000",
    "2.0**1e308",
    "10**1e10",
    "1.5**(10**300)",
    "0.5**(10**400)",
    "1e308*10",
    "1e999",
    "(2**9000)/3",
    "(-8)**0.5",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_calculator_refuses_huge_results_before_computing_them(expression: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ToolError, match="too large|not a real number"):
        evaluate(expression)
    assert time.perf_counter() - started < 0.05


def test_calculator_still_answers_large_but_bounded_arithmetic() -> None:
    assert evaluate("2**9999") == 2**9999  # 10,000 bits: the largest result allowed
    assert evaluate("(2**99)**99") == 2**9801
    assert evaluate("(-1)**(10**3000)") == 1
    assert evaluate("2**-2") == 0.25
    assert len(_format(evaluate("9**3000"))) == 2863  # str() would refuse past 4,300 digits


_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
_EXPRESSIONS = st.recursive(
    _NUMBERS,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner).map(
            lambda parts: f"({parts[0]}){parts[1]}({parts[2]})"
        ),
        inner.map(lambda part: f"-({part})"),
    ),
    max_leaves=12,
)


@settings(deadline=200, max_examples=300)
@given(_EXPRESSIONS)
def test_arithmetic_either_answers_finitely_or_is_refused_fast(expression: str) -> None:
    try:
        result = evaluate(expression)
    except ToolError:
        return
    assert not isinstance(result, float) or math.isfinite(result)
    _format(result)  # never the ValueError of str() on a 4,300+ digit int
