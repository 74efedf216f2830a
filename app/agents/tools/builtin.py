"""Built-in tools: a safe calculator (an AST walk, never eval) and the current time."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.agents.tools.registry import Tool, ToolError

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 100  # 10**100 is fine; 9**9**9 would hang the process


def evaluate(expression: str) -> float | int:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ToolError("not an arithmetic expression") from None
    return _eval(tree.body)


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        if isinstance(node.value, bool):
            raise ToolError("only numbers and + - * / // % ** ( ) are allowed")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent larger than {MAX_EXPONENT}")
        try:
            result: float | int = _BINARY[type(node.op)](left, right)
            return result
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("result too large") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        value: float | int = _UNARY[type(node.op)](_eval(node.operand))
        return value
    raise ToolError("only numbers and + - * / // % ** ( ) are allowed")


def _format(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


async def _calculator(arguments: dict[str, Any]) -> str:
    expression = arguments.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("'expression' must be a non-empty string")
    return _format(evaluate(expression))


async def _current_time(arguments: dict[str, Any]) -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


CALCULATOR = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression (+ - * / // % ** and parentheses).",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. 12*(3+4)"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
    function=_calculator,
)

CURRENT_TIME = Tool(
    name="current_time",
    description="The current date and time in UTC, ISO 8601.",
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
    function=_current_time,
)

BUILTIN_TOOLS = [CALCULATOR, CURRENT_TIME]
