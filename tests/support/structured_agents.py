"""An agent that takes structured input (``input_model``), served through the AGENTS setting
by tests/integration/test_structured_input.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel, Field

from app.sdk import Event, MessageEvent, RunContext, TokenEvent, agent


class Stop(BaseModel):
    city: str = Field(min_length=1, description="Where the traveller stays.")
    nights: int = Field(ge=1, le=30)


class Trip(BaseModel):
    traveller: str = Field(min_length=1)
    stops: list[Stop] = Field(min_length=1, description="In travel order.")
    with_car: bool = False


@agent(name="trip-planner", description="Summarises a trip given as fields.", input_model=Trip)
async def trip_planner(input: Trip, ctx: RunContext) -> AsyncIterator[Event]:
    await ctx.checkpoint()
    ctx.begin_step()
    # Only a validated Trip has these attributes (nights as numbers, with_car's default): the
    # reply shows the run got the model, not the raw body.
    route = ", ".join(f"{stop.city} x{stop.nights}" for stop in input.stops)
    nights = sum(stop.nights for stop in input.stops)
    summary = f"{type(input).__name__} for {input.traveller}: {route} = {nights} nights"
    yield TokenEvent(text=summary)
    yield MessageEvent(content=summary + (" by car" if input.with_car else ""))
