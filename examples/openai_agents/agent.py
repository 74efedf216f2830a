"""A support agent written with the OpenAI Agents SDK, served by agent-service unchanged.

    AGENTS=support=examples.openai_agents.agent:support make run

``support`` answers with a calculator tool, asks a person before it issues a refund (the
``issue_refund`` tool has ``needs_approval``: an ``input_required`` event of kind
``confirm``), and hands billing questions to ``billing`` (a new ``step``). Neither agent
names a model, so the service's LLM answers them (``LLM_PROVIDER``: the offline model by
default, which calls the calculator for arithmetic; ``openai`` for a real one).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

from agents import Agent, function_tool

_OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers and + - * / ( )")


@function_tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 12*(3+4)."""
    try:
        return f"{_evaluate(ast.parse(expression, mode='eval').body):g}"
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"


@function_tool(needs_approval=True)
def issue_refund(order_id: str, amount: float) -> str:
    """Refund ``amount`` on the order ``order_id``."""
    return f"Refunded {amount:.2f} on order {order_id}."


billing = Agent(
    name="Billing",
    handoff_description="Invoices, payments and refunds.",
    instructions="You handle billing. Refund only with the issue_refund tool.",
    tools=[issue_refund],
)

support = Agent(
    name="Support",
    instructions="You are a support agent for an online shop. Use the calculator for "
    "arithmetic; hand invoices, payments and refunds to Billing.",
    tools=[calculator],
    handoffs=[billing],
)
