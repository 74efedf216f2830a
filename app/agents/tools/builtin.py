"""Built-in tools: a safe calculator (an AST walk, never eval) and the current time.

The calculator bounds its work before doing it. One big-int ``**`` holds the GIL for as
long as it takes (``(((9**99)**99)**99)**5`` would freeze every thread for seconds), so a
timeout or a thread cannot save the process: the size of each result is estimated first
and anything past ``MAX_RESULT_BITS`` is refused.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field

from app.agents.tools.decorator import tool
from app.agents.tools.registry import ToolError

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
# ~3,000 decimal digits: microseconds to compute, and under the 4,300 digits str() allows.
MAX_RESULT_BITS = 10_000
ONLY_ARITHMETIC = "only numbers and + - * / // % ** ( ) are allowed"
TOO_LARGE = "result too large"


def evaluate(expression: str) -> float | int:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
        raise ToolError("not an arithmetic expression") from None
    return _eval(tree.body)


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        if isinstance(node.value, bool):
            raise ToolError(ONLY_ARITHMETIC)
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        _refuse_huge(node.op, left, right)
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError(TOO_LARGE) from None
        if isinstance(result, complex):  # (-8) ** 0.5
            raise ToolError("result is not a real number")
        return _checked(result)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand)))
    raise ToolError(ONLY_ARITHMETIC)


def _refuse_huge(op: ast.operator, left: float | int, right: float | int) -> None:
    """Refuse an int ``*`` or ``**`` whose result would pass MAX_RESULT_BITS, before computing.

    Float operations take constant time and overflow (OverflowError or inf) on their own.
    """
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    if isinstance(op, ast.Mult):
        estimate = float(left.bit_length() + right.bit_length())
    elif isinstance(op, ast.Pow) and right > 0 and abs(left) > 1:
        # |left| >= 2 gives at least ``right`` bits; the check also keeps ``right`` a float.
        estimate = right * math.log2(abs(left)) if right <= MAX_RESULT_BITS else math.inf
    else:
        return
    if estimate > MAX_RESULT_BITS:
        raise ToolError(TOO_LARGE)


def _checked(value: float | int) -> float | int:
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise ToolError(TOO_LARGE)
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(TOO_LARGE if math.isinf(value) else "result is not a number")
    return value


def _format(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@tool(
    name="calculator",
    description="Evaluate an arithmetic expression (+ - * / // % ** and parentheses).",
)
def calculator(
    expression: Annotated[str, Field(min_length=1, description="e.g. 12*(3+4)")],
) -> str:
    return _format(evaluate(expression))


@tool(name="current_time")
async def current_time() -> str:
    """The current date and time in UTC, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


CALCULATOR = calculator
CURRENT_TIME = current_time
BUILTIN_TOOLS = [CALCULATOR, CURRENT_TIME]
