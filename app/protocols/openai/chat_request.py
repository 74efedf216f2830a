"""A Chat Completions body -> the RunRequest every transport starts (app/agents/run_request.py).

The body is parsed here rather than by FastAPI so that a bad one is OpenAI's 400 naming the
field (``param``), not our 422: OpenAI's API has no 422 and its clients treat 400 as "fix
the request".
"""

from __future__ import annotations

from pydantic import ValidationError

from app.agents.errors import AgentNotFound
from app.agents.protocol import parse_input
from app.agents.registry import AgentRegistry
from app.agents.run_request import RunRequest
from app.core.config import Settings
from app.core.errors import Unprocessable
from app.protocols.openai.chat_schemas import ChatCompletionRequest
from app.protocols.openai.errors import InvalidRequest, model_not_found
from app.protocols.openai.messages import split_conversation
from app.security.principals import Principal


def parse_body(raw: bytes) -> ChatCompletionRequest:
    """The body, or a 400 ``validation_error`` whose ``param`` is the first bad field."""
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_input=False, include_url=False)
        ]
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "json_invalid" or not raw.strip():
            detail = "The body must be a JSON object (Content-Type: application/json)."
        else:
            detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise InvalidRequest(detail, code="validation_error", errors=errors) from None


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    if body.n not in (None, 1):
        raise InvalidRequest("n: only 1 is supported (an agent run has one answer).", param=("n",))
    for name in ("tools", "functions"):
        if getattr(body, name):
            raise InvalidRequest(
                f"{name}: client-side tools are not supported. The agent calls its own tools "
                "on the server; they appear in the completion's agent_run.steps.",
                param=(name,),
                code="unsupported_parameter",
            )
    if body.session_id is not None and len(body.messages) != 1:
        raise InvalidRequest(
            "With session_id the session holds the conversation: send only the new user "
            "message in messages.",
            param=("messages",),
        )


def build_chat_run(
    body: ChatCompletionRequest,
    *,
    principal: Principal,
    settings: Settings,
    agents: AgentRegistry,
    no_cache: bool,
) -> RunRequest:
    """The run ``body`` asks for: the agent named by ``model``, the last user message as its
    input (checked against the agent's input model, if it has one), the earlier messages as
    its history, or the session's when ``session_id`` is given."""
    try:
        agent = agents.require(body.model)
    except AgentNotFound:
        raise model_not_found(body.model) from None
    _refuse_unsupported(body)
    text, history = split_conversation(body.messages, history_limit=settings.SESSION_MAX_MESSAGES)
    last = len(body.messages) - 1
    if len(text) > settings.MAX_INPUT_CHARS:
        raise InvalidRequest(
            f"The last user message is longer than {settings.MAX_INPUT_CHARS} characters.",
            param=("messages", last, "content"),
            code="input_too_long",
        )
    try:
        agent_input = parse_input(agent, text, loc=("messages", str(last), "content"))
    except Unprocessable as exc:  # the agent takes an object and the text is not one
        raise InvalidRequest(
            exc.detail, code=exc.code, errors=exc.extensions.get("errors")
        ) from None
    with_session = body.session_id is not None
    return RunRequest(
        agent=agent.name,
        input=agent_input,
        given_input=text,
        principal=principal,
        session_id=body.session_id,
        params=body.run_params(),
        bypass_cache=no_cache,
        # Stateless as OpenAI's API is: no session is started; the run's record is kept.
        store=with_session,
        history=None if with_session else history,
    )
