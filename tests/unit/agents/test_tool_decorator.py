"""@tool: the JSON schema comes from the signature, and the model's arguments are checked
against it before the function sees them."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from app.agents.tools.registry import Tool, ToolOutcome, ToolRegistry
from app.sdk import ToolError, tool


class Address(BaseModel):
    street: str
    city: str
    postcode: str | None = None


@tool
def ship(
    order_id: str,
    quantity: int,
    address: Address,
    speed: Literal["standard", "express"] = "standard",
    gift_note: str | None = None,
    weight_kg: Annotated[float, Field(gt=0, description="Parcel weight")] = 1.0,
) -> dict[str, object]:
    """Ship an order to an address.

    Longer notes for humans stay out of the description the model sees.
    """
    return {"order": order_id, "to": address.city, "qty": quantity, "speed": speed}


def test_the_schema_is_derived_from_type_hints_and_defaults() -> None:
    assert isinstance(ship, Tool)
    assert ship.name == "ship"
    assert ship.description == "Ship an order to an address."
    schema = ship.parameters
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["order_id", "quantity", "address"]
    properties = schema["properties"]
    assert properties["order_id"] == {"type": "string"}
    assert properties["quantity"] == {"type": "integer"}
    assert properties["speed"] == {
        "enum": ["standard", "express"],
        "type": "string",
        "default": "standard",
    }
    assert properties["gift_note"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }
    assert properties["weight_kg"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Parcel weight",
        "default": 1.0,
    }
    # A pydantic model argument is a referenced object schema.
    assert properties["address"] == {"$ref": "#/$defs/Address"}
    address = schema["$defs"]["Address"]
    assert address["required"] == ["street", "city"]
    assert set(address["properties"]) == {"street", "city", "postcode"}
    assert "title" not in schema and "title" not in properties["order_id"]


async def test_valid_arguments_reach_the_function_typed_and_a_non_string_result_is_json() -> None:
    registry = ToolRegistry([ship])
    outcome = await registry.call(
        "ship",
        {"order_id": "A-1", "quantity": "3", "address": {"street": "1 Main St", "city": "Oslo"}},
    )
    assert outcome == ToolOutcome(
        '{"order":"A-1","to":"Oslo","qty":3,"speed":"standard"}', success=True
    )


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"quantity": 1, "address": {"street": "s", "city": "c"}}, "order_id: Field required"),
        (
            {"order_id": "A", "quantity": "many", "address": {"street": "s", "city": "c"}},
            "quantity: Input should be a valid integer",
        ),
        (
            {"order_id": "A", "quantity": 1, "address": {"street": "s"}},
            "address.city: Field required",
        ),
        (
            {"order_id": "A", "quantity": 1, "address": {"street": "s", "city": "c"}, "x": 1},
            "x: Extra inputs are not permitted",
        ),
        (
            {
                "order_id": "A",
                "quantity": 1,
                "address": {"street": "s", "city": "c"},
                "speed": "teleport",
            },
            "speed: Input should be 'standard' or 'express'",
        ),
    ],
)
async def test_arguments_that_do_not_fit_the_schema_are_a_failed_outcome(
    arguments: dict[str, object], complaint: str
) -> None:
    outcome = await ToolRegistry([ship]).call("ship", arguments)
    assert outcome.success is False
    assert outcome.output.startswith("invalid arguments: ")
    assert complaint in outcome.output


async def test_name_and_description_can_be_given_and_async_functions_are_awaited() -> None:
    @tool(name="lookup-order", description="Find an order.")
    async def lookup(order_id: str) -> str:
        if order_id == "missing":
            raise ToolError("no such order")
        return f"order {order_id}: shipped"

    registry = ToolRegistry([lookup])
    assert (lookup.name, lookup.description) == ("lookup-order", "Find an order.")
    assert await registry.call("lookup-order", {"order_id": "7"}) == ToolOutcome(
        "order 7: shipped", True
    )
    assert await registry.call("lookup-order", {"order_id": "missing"}) == ToolOutcome(
        "no such order", False
    )


def test_a_tool_without_parameters_takes_an_empty_object() -> None:
    @tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert ping.parameters == {"additionalProperties": False, "properties": {}, "type": "object"}


def test_signatures_without_a_schema_are_refused_when_decorated() -> None:
    with pytest.raises(TypeError, match="docstring or description"):

        @tool
        def undocumented(x: int) -> int:
            return x

    with pytest.raises(TypeError, match=r"\*args"):

        @tool(description="d")
        def variadic(*values: int) -> int:
            return sum(values)

    with pytest.raises(TypeError, match="by name"):

        @tool(description="d")
        def positional(x: int, /) -> int:
            return x
