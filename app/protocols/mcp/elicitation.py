"""A run's question (``ctx.ask``: an ``input_required`` event) asked of the MCP client as a
form elicitation, and the answer it gives, in the shape the run takes (str or bool).

One field, ``answer``: a string (text), one of the choices (choice) or a boolean (confirm).
The client declining or dismissing the form is no answer: the caller ends the run.
"""

from __future__ import annotations

from typing import Any

from mcp import types
from mcp.server.session import ServerSession

from app.agents.events import InputRequired
from app.core.errors import AppError

_ELICITATION = types.ClientCapabilities(elicitation=types.ElicitationCapability())


class NoAnswer(AppError):
    """The run needs an answer this client cannot or will not give."""

    status, code = 409, "input_required_unsupported"


def can_elicit(session: ServerSession) -> bool:
    """Whether the client declared elicitation at initialize. A stateless server never saw
    the initialize (each request is a fresh session), so it cannot tell: no."""
    return session.client_params is not None and session.check_client_capability(_ELICITATION)


def requested_schema(event: InputRequired) -> types.ElicitRequestedSchema:
    answer: dict[str, Any]
    if event.kind == "confirm":
        answer = {"type": "boolean", "title": "Approve"}
    elif event.kind == "choice":
        answer = {"type": "string", "title": "Choice", "enum": list(event.choices or [])}
    else:
        answer = {"type": "string", "title": "Answer", "minLength": 1}
    answer["description"] = event.prompt
    return {"type": "object", "properties": {"answer": answer}, "required": ["answer"]}


async def ask_client(
    session: ServerSession, event: InputRequired, *, related_request_id: types.RequestId
) -> str | bool:
    """The client's answer to the run's question. NoAnswer when the client has no elicitation
    or the user declined or dismissed it."""
    if not can_elicit(session):
        raise NoAnswer(
            f"The agent asks for human input ({event.prompt!r}) and this MCP client does not "
            "support elicitation (or the server runs stateless, MCP_STATELESS=true): use a "
            "client that declares the elicitation capability, or the REST stream, WebSocket "
            "or a background task."
        )
    result = await session.elicit_form(
        event.prompt, requested_schema(event), related_request_id=related_request_id
    )
    if result.action != "accept":
        raise NoAnswer(f"The user did not answer ({result.action}): {event.prompt}")
    value = (result.content or {}).get("answer")
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    raise NoAnswer(f"The answer to {event.prompt!r} is missing or not a string or boolean.")
