"""The asynchronous client: the same operations as Client, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

import httpx

from agent_service_client.auth import Credentials
from agent_service_client.calls import (
    RETRY_STATUSES,
    Call,
    Json,
    login_call,
    run_body,
    seg,
    settling,
)
from agent_service_client.client import DEFAULT_TIMEOUT
from agent_service_client.errors import ApiError, StreamError, TaskTimeout
from agent_service_client.events import StreamItem
from agent_service_client.models import Invocation, TaskResult
from agent_service_client.operations import Operations
from agent_service_client.streams import AsyncOpener, Backoff, afollow


class AsyncClient(Operations[Awaitable[Json]]):
    """``AsyncClient(url, api_key=...)``, ``token=...`` or ``username=..., password=...``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.credentials = Credentials(api_key, token, username, password)
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self._http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self._login_lock = asyncio.Lock()  # concurrent calls sign in once, not each

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- sending ---------------------------------------------------------------------------
    async def login(self) -> Json:
        """Sign in with the username and password given (done by itself when needed)."""
        body = await self._json(login_call(self.credentials))
        self.credentials.logged_in(body["access_token"], float(body["expires_in"]))
        return body

    async def _headers(self, call: Call) -> dict[str, str]:
        if not call.authenticated:
            return call.headers
        if self.credentials.needs_login():
            async with self._login_lock:
                if self.credentials.needs_login():
                    await self.login()
        return {**self.credentials.headers(), **call.headers}

    async def _send(self, call: Call) -> httpx.Response:
        attempt = relogged = settled = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    data=call.form,
                    params=call.query(),
                    headers=await self._headers(call),
                )
            except httpx.TransportError:
                if not call.safe or attempt >= self.max_retries:
                    raise
                attempt += 1
                await asyncio.sleep(self.backoff.delay(attempt))
                continue
            if response.status_code == 401 and self.credentials.logs_in and not relogged:
                relogged = 1  # the token was refused (expired, revoked): sign in once more
                self.credentials.expire()
                continue
            if response.status_code in RETRY_STATUSES and call.safe and attempt < self.max_retries:
                attempt += 1
                error = ApiError.from_response(response)
                await asyncio.sleep(error.retry_after or self.backoff.delay(attempt))
                continue
            if response.status_code >= 400:
                error = ApiError.from_response(response)
                wait = settling(call, error.code, settled) if error.status == 409 else None
                if wait is None:
                    raise error
                settled += 1
                await asyncio.sleep(wait)
                continue
            return response

    async def _json(self, call: Call) -> Json:
        response = await self._send(call)
        if not response.content:
            return {}
        body: Json = response.json()
        return body

    @asynccontextmanager
    async def _open(self, call: Call) -> AsyncGenerator[httpx.Response, None]:
        request = self._http.build_request(
            call.method,
            call.path,
            json=call.json,
            params=call.query(),
            headers=await self._headers(call),
        )
        response = await self._http.send(request, stream=True)
        try:
            if response.status_code == 401 and self.credentials.logs_in:
                self.credentials.expire()  # the next reconnection signs in again
            if response.status_code >= 400:
                await response.aread()
                raise ApiError.from_response(response)
            yield response
        finally:
            await response.aclose()

    # -- runs ------------------------------------------------------------------------------
    async def invoke(
        self,
        agent: str,
        input: str | Json,  # noqa: A002 - the API's name for it
        **options: Any,
    ) -> Invocation:
        """Run ``agent`` to its end. Options: session_id, params, max_steps, store, if_busy."""
        call = Call("POST", f"/v1/agents/{seg(agent)}/invoke", json=run_body(input, **options))
        return Invocation.model_validate(await self._json(call))

    def stream(
        self,
        agent: str,
        input: str | Json,  # noqa: A002 - the API's name for it
        **options: Any,
    ) -> AsyncRunStream:
        """The run's events as they happen: ``async with client.stream(...) as run: async
        for event in run: ...``; resumed from the last event if the connection breaks."""
        call = Call("POST", f"/v1/agents/{seg(agent)}/stream", json=run_body(input, **options))
        return AsyncRunStream(self, call)

    def follow_run(self, run_id: str, *, after: int = 0) -> AsyncGenerator[StreamItem, None]:
        path = f"/v1/runs/{seg(run_id)}/events"
        return afollow(self._resumer(path), after=after, backoff=self.backoff)

    def follow_task(self, task_id: str, *, after: int = 0) -> AsyncGenerator[StreamItem, None]:
        path = f"/v1/tasks/{seg(task_id)}/events"
        return afollow(self._resumer(path), after=after, backoff=self.backoff)

    def _resumer(self, path: str) -> AsyncOpener:
        def open_stream(after: int) -> AbstractAsyncContextManager[httpx.Response]:
            headers = {"Accept": "text/event-stream"}
            if after:
                headers["Last-Event-ID"] = str(after)
            return self._open(Call("GET", path, headers=headers))

        return open_stream

    # -- tasks -----------------------------------------------------------------------------
    async def get_task_result(self, task_id: str) -> TaskResult | None:
        """The finished task's result; None while it has not finished."""
        response = await self._send(Call("GET", f"/v1/tasks/{seg(task_id)}/result"))
        return None if response.status_code == 202 else TaskResult.model_validate(response.json())

    async def wait_task(self, task_id: str, *, timeout: float = 300.0) -> TaskResult:  # noqa: ASYNC109 - as Client.wait_task
        """Follows the task's events to its end, then answers its result."""
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.follow_task(task_id):
                    pass
        except TimeoutError:
            raise TaskTimeout(f"task {task_id} did not finish in {timeout} s") from None
        while True:
            result = await self.get_task_result(task_id)
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise TaskTimeout(f"task {task_id} did not finish in {timeout} s")
            await asyncio.sleep(0.2)  # the record is written just after the final event


class AsyncRunStream:
    """One run's events. ``run_id`` and ``session_id`` are known once iteration starts."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._client = client
        self._call = call
        self.run_id: str | None = None
        self.session_id: str | None = None
        self._iterator: AsyncGenerator[StreamItem, None] | None = None

    def _open(self, after: int) -> AbstractAsyncContextManager[httpx.Response]:
        if self.run_id is None:
            return self._first()
        return self._client._resumer(f"/v1/runs/{seg(self.run_id)}/events")(after)

    @asynccontextmanager
    async def _first(self) -> AsyncGenerator[httpx.Response, None]:
        async with self._client._open(self._call) as response:
            self.run_id = response.headers.get("X-Run-ID")
            self.session_id = response.headers.get("X-Session-ID")
            yield response

    def _resumable(self) -> bool:
        return self.run_id is not None  # never POST twice: that would be a second run

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        if self._iterator is None:
            self._iterator = afollow(
                self._open, after=0, backoff=self._client.backoff, resumable=self._resumable
            )
        return self._iterator

    async def cancel(self) -> None:
        """Cancels the run (POST /v1/runs/{id}/cancel); its stream then ends with `error`."""
        if self.run_id is not None:
            await self._client.cancel_run(self.run_id)

    async def answer(self, request_id: str, value: str | bool) -> Json:
        if self.run_id is None:
            raise StreamError("no run yet: iterate the stream first")
        return await self._client.answer_run(self.run_id, request_id, value)

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()

    async def __aenter__(self) -> AsyncRunStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
