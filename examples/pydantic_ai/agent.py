"""A support agent written with Pydantic AI, served by agent-service without changing it.

    AGENTS=support=examples.pydantic_ai.agent:agent make run

Without a model of its own the agent answers through the service's LLM (LLM_PROVIDER: the
offline model by default, OpenAI-compatible with OPENAI_BASE_URL/OPENAI_API_KEY), with the
service's cache and metrics. Set PYDANTIC_AI_MODEL (e.g. ``openai:gpt-4o-mini``) to use the
framework's own model client instead. ``refund`` needs a human's approval: the run asks with
an ``input_required`` event of kind ``confirm`` and goes on with the answer.
"""

from __future__ import annotations

import os

from pydantic_ai import Agent

ORDERS = {"A100": "shipped on Monday", "A200": "waiting for stock"}

agent = Agent(
    os.environ.get("PYDANTIC_AI_MODEL") or None,
    name="support",
    description="Answers questions about orders; refunds need a human's approval.",
    instructions=(
        "You are a support agent for an online shop. Look orders up with order_status. "
        "Offer a refund only when the customer asks for one."
    ),
)


@agent.tool_plain
def order_status(order_id: str) -> str:
    """Where an order is, by its id (such as A100)."""
    return ORDERS.get(order_id.upper(), f"no order {order_id}")


@agent.tool_plain(requires_approval=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an order (a person approves each refund before it is made)."""
    return f"refunded {amount:.2f} for order {order_id.upper()}"
