"""What the Responses routes do, over the same runs, tasks and sessions as the native API.

- A new response is a new run: a foreground run (RunService.start), or with ``background`` a
  task (TaskService.submit) that a worker executes and that outlives the client.
- ``previous_response_id`` continues that response's conversation: its run's session. If that
  response ended asking a question and the run still waits for the answer, the new response
  IS the answer (the run's input request is answered) and covers the rest of that run.
- ``store: false``: no session and nothing kept under the response's id.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.agents.control_bus import ControlRequest
from app.agents.errors import AgentNotFound
from app.agents.events import InputRequired
from app.agents.protocol import Agent, parse_input
from app.agents.run import Run
from app.agents.run_request import RunRequest
from app.api.deps import authorize
from app.core.errors import AppError, Conflict, NotFound, Unprocessable
from app.llm.types import ChatMessage
from app.protocols.openai.errors import InvalidRequest, model_not_found
from app.protocols.openai.responses_conversation import history_with, seed_session
from app.protocols.openai.responses_encoder import (
    ResponseEncoder,
    ResponseHead,
    approval_item_id,
)
from app.protocols.openai.responses_events import logged_pages, logged_then_live, run_to_end
from app.protocols.openai.responses_request import (
    InputItem,
    ResponseCreateRequest,
    answer_of,
    new_run_input,
    parse_items,
)
from app.protocols.openai.responses_store import (
    ResponseMeta,
    ResponseRef,
    parse_response_id,
    response_store,
    retention_seconds,
)
from app.security.principals import Principal
from app.security.scopes import Scope
from app.services import AppServices
from app.store.run_records import RunRecord

QUESTION_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Started:
    head: ResponseHead
    run_id: str
    after: int
    run: Run | None = None  # started by this request, in this process (its feed is here)


def response_not_found(param: str | None = None) -> NotFound:
    error = NotFound("No response with this id.", code="response_not_found")
    if param is not None:
        error.extensions["errors"] = [{"loc": [param], "msg": error.detail, "type": error.code}]
    return error


def head_of(meta: ResponseMeta, *, store: bool = True) -> ResponseHead:
    return ResponseHead(
        id=meta.id,
        run_id=meta.run_id,
        model=meta.model,
        created_at=meta.created_at,
        background=meta.background,
        queued=meta.background and meta.after == 0,
        first=meta.after == 0,
        instructions=meta.instructions,
        metadata=meta.metadata,
        previous_response_id=meta.previous_response_id,
        temperature=meta.temperature,
        max_output_tokens=meta.max_output_tokens,
        store=store,
    )


class ResponsesService:
    def __init__(self, services: AppServices) -> None:
        self._services = services
        self._settings = services.settings
        self.runs = services.runs
        self._tasks = services.tasks
        self._sessions = services.sessions
        self._store = response_store(services)

    # -- reading -----------------------------------------------------------------------------
    async def owned(
        self, principal: Principal, response_id: str, *, param: str | None = None
    ) -> ResponseMeta:
        """The caller's response; anyone else's, a deleted one or a malformed id: 404."""
        ref = parse_response_id(response_id)
        meta = None if ref is None else await self._store.get(ref.id)
        if meta is None or meta.owner != principal.id:
            raise response_not_found(param)
        return meta

    async def record(self, principal: Principal, meta: ResponseMeta) -> RunRecord:
        try:
            return await self.runs.get(owner=principal, run_id=meta.run_id)
        except NotFound:  # the run's record is gone (retention, RUN_LOG_ENABLED=false)
            raise response_not_found() from None

    async def logged(self, meta: ResponseMeta) -> ResponseEncoder:
        """The response as its run's log has it now."""
        return await self.read(head_of(meta), meta.run_id, after=meta.after)

    async def read(self, head: ResponseHead, run_id: str, *, after: int) -> ResponseEncoder:
        encoder = await run_to_end(
            ResponseEncoder(head), logged_pages(self.runs, run_id, after=after)
        )
        if encoder.ended:
            return encoder
        record = await self.runs.store.get(run_id)
        if record is None or record.status != "input_required":
            return encoder
        # A question is on the record before it is in the log (log writes are batched, the
        # record's is not): follow the run until the log or the live feed shows it.
        try:
            async with asyncio.timeout(QUESTION_WAIT_SECONDS):
                live = logged_then_live(self.runs, run_id, after=after)
                return await run_to_end(ResponseEncoder(head), live)
        except TimeoutError:
            return encoder

    # -- creating ----------------------------------------------------------------------------
    async def create(
        self, body: ResponseCreateRequest, principal: Principal, *, no_cache: bool
    ) -> Started:
        items = parse_items(body)
        if body.background:
            if not body.store:
                raise InvalidRequest(
                    "background responses are stored: store must be true.", param=("store",)
                )
            self._authorize(principal, Scope.TASKS_WRITE)
        try:
            agent = self.runs.agents.require(body.model)
        except AgentNotFound:
            raise model_not_found(body.model) from None
        previous = None
        if body.previous_response_id is not None:
            previous = await self.owned(
                principal, body.previous_response_id, param="previous_response_id"
            )
            if previous.model != agent.name:
                raise InvalidRequest(
                    f"The previous response is model {previous.model!r}'s: a conversation "
                    "stays with one agent.",
                    param=("model",),
                )
            question = await self._waiting_question(previous)
            if question is not None:
                return await self._answer(body, items, principal, previous, *question)
        return await self._new_run(body, items, principal, agent, previous, no_cache=no_cache)

    def _authorize(self, principal: Principal, scope: Scope) -> None:
        authorize(principal, required=frozenset({scope}), auth=self._settings.AUTH_ENABLED)

    async def _waiting_question(
        self, meta: ResponseMeta
    ) -> tuple[InputRequired, int, RunRecord] | None:
        """The question ``meta``'s response ended with, if its run still waits for it."""
        record = await self.runs.store.get(meta.run_id)
        pending = None if record is None or record.finished else record.pending_input
        if record is None or pending is None:
            return None
        encoder = await self.logged(meta)
        if encoder.question is None or encoder.question[0].request_id != pending.request_id:
            return None
        question, seq = encoder.question
        return question, seq, record

    async def _answer(
        self,
        body: ResponseCreateRequest,
        items: list[InputItem],
        principal: Principal,
        previous: ResponseMeta,
        question: InputRequired,
        seq: int,
        record: RunRecord,
    ) -> Started:
        value = answer_of(items, approval_item_id(question.request_id))
        background = record.kind == "task"
        try:
            if background:
                self._authorize(principal, Scope.TASKS_WRITE)
                await self._tasks.answer(
                    owner=principal, task_id=record.id, request_id=question.request_id, value=value
                )
            else:
                await self.runs.control(
                    ControlRequest(
                        run_id=record.id,
                        principal_id=principal.id,
                        action="input",
                        request_id=question.request_id,
                        value=value,
                    )
                )
        except Unprocessable as exc:  # not an answer this question takes: it still waits
            raise InvalidRequest(exc.detail, param=("input",), code=exc.code) from None
        except (NotFound, Conflict):  # answered a moment ago by someone else
            raise Conflict(
                "The previous response's question has already been answered.",
                code="input_already_answered",
            ) from None
        meta = self._meta(body, principal, ResponseRef(record.id, seq), background)
        meta.session_id, meta.previous_response_id = previous.session_id, previous.id
        await self._save(meta, store=body.store)
        return Started(head_of(meta, store=body.store), record.id, seq)

    async def _new_run(
        self,
        body: ResponseCreateRequest,
        items: list[InputItem],
        principal: Principal,
        agent: Agent,
        previous: ResponseMeta | None,
        *,
        no_cache: bool,
    ) -> Started:
        settings = self._settings
        text, earlier = new_run_input(items, history_limit=settings.SESSION_MAX_MESSAGES)
        if len(text) > settings.MAX_INPUT_CHARS:
            raise InvalidRequest(
                f"The input is longer than {settings.MAX_INPUT_CHARS} characters.",
                param=("input",),
                code="input_too_long",
            )
        try:
            agent_input = parse_input(agent, text, loc=("input",))
        except Unprocessable as exc:  # the agent takes an object and the text is not one
            raise InvalidRequest(
                exc.detail, code=exc.code, errors=exc.extensions.get("errors")
            ) from None
        session_id = None if previous is None else previous.session_id
        if previous is not None and session_id is None:
            raise Conflict(
                "The previous response's conversation was not kept (no session).",
                code="conversation_not_kept",
            )
        instructions = body.instructions
        history: list[ChatMessage] = []  # empty: the session's
        if body.background:
            # A task's run reads its history from its session only: what it is sent goes
            # there (its instructions too, as a system message).
            seed = [ChatMessage(role="system", content=instructions)] if instructions else []
            if seed or earlier:
                session_id = await seed_session(
                    self._sessions, principal, agent.name, session_id, [*seed, *earlier]
                )
            return await self._submit(body, principal, agent.name, text, session_id)
        if body.store and earlier:
            # The conversation lives in the run's session, so that a later response with
            # previous_response_id sees what this one was sent, not only its exchange.
            session_id = await seed_session(
                self._sessions, principal, agent.name, session_id, earlier
            )
            if instructions:
                history = await history_with(
                    self._sessions, self._settings, session_id, instructions
                )
        elif earlier:  # not stored: the client's conversation is this run's history only
            system = [ChatMessage(role="system", content=instructions)] if instructions else []
            history = [*system, *earlier]
        elif instructions:
            history = await history_with(self._sessions, self._settings, session_id, instructions)
        request = RunRequest(
            agent=agent.name,
            input=agent_input,
            given_input=text,
            principal=principal,
            session_id=session_id,
            params=body.run_params(),
            bypass_cache=no_cache,
            store=body.store,
            history=history or None,
        )
        run = await self.runs.start(request)
        meta = self._meta(body, principal, ResponseRef(run.run_id), background=False)
        meta.session_id = run.session_id
        meta.previous_response_id = None if previous is None else previous.id
        try:
            await self._save(meta, store=body.store)
        except BaseException:
            run.cancel("cancelled")  # the client never learns its id: nobody could reach it
            raise
        return Started(head_of(meta, store=body.store), run.run_id, 0, run=run)

    async def _submit(
        self,
        body: ResponseCreateRequest,
        principal: Principal,
        agent: str,
        text: str,
        session_id: str | None,
    ) -> Started:
        if session_id is None:  # a task starts no session itself: give it one to continue
            session_id = (await self._sessions.create(owner=principal, agent=agent)).id
        record, _ = await self._tasks.submit(
            owner=principal,
            agent=agent,
            input=text,
            session_id=session_id,
            max_steps=None,
            params=body.run_params(),
            idempotency_key=None,
        )
        meta = self._meta(body, principal, ResponseRef(record.id), background=True)
        meta.session_id = session_id
        meta.previous_response_id = body.previous_response_id
        await self._save(meta, store=True)
        return Started(head_of(meta), record.id, 0)

    def _meta(
        self,
        body: ResponseCreateRequest,
        principal: Principal,
        ref: ResponseRef,
        background: bool,
    ) -> ResponseMeta:
        return ResponseMeta(
            id=ref.id,
            owner=principal.id,
            run_id=ref.run_id,
            after=ref.after,
            model=body.model,
            background=background,
            instructions=body.instructions,
            metadata=body.metadata or {},
            temperature=body.temperature,
            max_output_tokens=body.max_output_tokens,
        )

    async def _save(self, meta: ResponseMeta, *, store: bool) -> None:
        if store:
            ttl = retention_seconds(self._services, background=meta.background)
            await self._store.save(meta, ttl_seconds=ttl)

    # -- cancelling and deleting -------------------------------------------------------------
    async def stop_run(self, principal: Principal, meta: ResponseMeta) -> None:
        """Cancel the response's run if it still runs (a task: as DELETE /v1/tasks/{id})."""
        record = await self.runs.store.get(meta.run_id)
        if record is None or record.finished:
            return
        if record.kind == "task":
            self._authorize(principal, Scope.TASKS_WRITE)
            await self._tasks.cancel(owner=principal, task_id=record.id)
            return
        try:
            await self.runs.control(
                ControlRequest(run_id=record.id, principal_id=principal.id, action="cancel")
            )
        except AppError as exc:
            if exc.status != 404:  # 404: it ended meanwhile
                raise

    async def delete(self, principal: Principal, meta: ResponseMeta) -> None:
        await self.stop_run(principal, meta)
        await self._store.delete(meta.id)
