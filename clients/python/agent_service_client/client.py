"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
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
from agent_service_client.errors import ApiError, StreamError, TaskTimeout
from agent_service_client.events import StreamItem
from agent_service_client.models import Invocation, TaskResult
from agent_service_client.operations import Operations
from agent_service_client.streams import Backoff, Opener, follow

DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=None)  # streams wait for events: no read timeout


class Client(Operations[Json]):
    """``Client(url, api_key=...)``, ``token=...`` or ``username=..., password=...``."""

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
        http: httpx.Client | None = None,
    ) -> None:
        self.credentials = Credentials(api_key, token, username, password)
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------
    def login(self) -> Json:
        """Sign in with the username and password given (done by itself when needed)."""
        body = self._json(login_call(self.credentials))
        self.credentials.logged_in(body["access_token"], float(body["expires_in"]))
        return body

    def _headers(self, call: Call) -> dict[str, str]:
        if not call.authenticated:
            return call.headers
        if self.credentials.needs_login():
            self.login()
        return {**self.credentials.headers(), **call.headers}

    def _send(self, call: Call) -> httpx.Response:
        attempt = relogged = settled = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    data=call.form,
                    params=call.query(),
                    headers=self._headers(call),
                )
            except httpx.TransportError:
                if not call.safe or attempt >= self.max_retries:
                    raise
                attempt += 1
                time.sleep(self.backoff.delay(attempt))
                continue
            if response.status_code == 401 and self.credentials.logs_in and not relogged:
                relogged = 1  # the token was refused (expired, revoked): sign in once more
                self.credentials.expire()
                continue
            if response.status_code in RETRY_STATUSES and call.safe and attempt < self.max_retries:
                attempt += 1
                error = ApiError.from_response(response)
                time.sleep(error.retry_after or self.backoff.delay(attempt))
                continue
            if response.status_code >= 400:
                error = ApiError.from_response(response)
                wait = settling(call, error.code, settled) if error.status == 409 else None
                if wait is None:
                    raise error
                settled += 1
                time.sleep(wait)
                continue
            return response

    def _json(self, call: Call) -> Json:
        response = self._send(call)
        if not response.content:
            return {}
        body: Json = response.json()
        return body

    @contextmanager
    def _open(self, call: Call) -> Iterator[httpx.Response]:
        request = self._http.build_request(
            call.method, call.path, json=call.json, params=call.query(), headers=self._headers(call)
        )
        response = self._http.send(request, stream=True)
        try:
            if response.status_code == 401 and self.credentials.logs_in:
                self.credentials.expire()  # the next reconnection signs in again
            if response.status_code >= 400:
                response.read()
                raise ApiError.from_response(response)
            yield response
        finally:
            response.close()

    # -- runs ------------------------------------------------------------------------------
    def invoke(self, agent: str, input: str | Json, **options: Any) -> Invocation:  # noqa: A002
        """Run ``agent`` to its end. Options: session_id, params, max_steps, store, if_busy."""
        call = Call("POST", f"/v1/agents/{seg(agent)}/invoke", json=run_body(input, **options))
        return Invocation.model_validate(self._json(call))

    def stream(self, agent: str, input: str | Json, **options: Any) -> RunStream:  # noqa: A002
        """The run's events as they happen: ``with client.stream(...) as run: for event in
        run: ...``. Options as invoke, plus on_disconnect. A broken connection is resumed
        from the last event (GET /v1/runs/{id}/events with Last-Event-ID)."""
        call = Call("POST", f"/v1/agents/{seg(agent)}/stream", json=run_body(input, **options))
        return RunStream(self, call)

    def follow_run(self, run_id: str, *, after: int = 0) -> Generator[StreamItem, None, None]:
        """A run's events after ``after`` to its end, reconnecting as needed."""
        path = f"/v1/runs/{seg(run_id)}/events"
        return follow(self._resumer(path), after=after, backoff=self.backoff)

    def follow_task(self, task_id: str, *, after: int = 0) -> Generator[StreamItem, None, None]:
        """A task's events after ``after`` to its end, reconnecting as needed."""
        path = f"/v1/tasks/{seg(task_id)}/events"
        return follow(self._resumer(path), after=after, backoff=self.backoff)

    def _resumer(self, path: str) -> Opener:
        def open_stream(after: int) -> AbstractContextManager[httpx.Response]:
            headers = {"Accept": "text/event-stream"}
            if after:
                headers["Last-Event-ID"] = str(after)
            return self._open(Call("GET", path, headers=headers))

        return open_stream

    # -- tasks -----------------------------------------------------------------------------
    def get_task_result(self, task_id: str) -> TaskResult | None:
        """The finished task's result; None while it has not finished."""
        response = self._send(Call("GET", f"/v1/tasks/{seg(task_id)}/result"))
        return None if response.status_code == 202 else TaskResult.model_validate(response.json())

    def wait_task(self, task_id: str, *, timeout: float = 300.0) -> TaskResult:
        """Follows the task's events to its end, then answers its result."""
        deadline = time.monotonic() + timeout
        for _ in self.follow_task(task_id):
            if time.monotonic() > deadline:
                break
        while True:
            result = self.get_task_result(task_id)
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise TaskTimeout(f"task {task_id} did not finish in {timeout} s")
            time.sleep(0.2)  # the record is written just after the final event


class RunStream:
    """One run's events. ``run_id`` and ``session_id`` are known once iteration starts."""

    def __init__(self, client: Client, call: Call) -> None:
        self._client = client
        self._call = call
        self.run_id: str | None = None
        self.session_id: str | None = None
        self._iterator: Generator[StreamItem, None, None] | None = None

    def _open(self, after: int) -> AbstractContextManager[httpx.Response]:
        if self.run_id is None:
            return self._first()
        return self._client._resumer(f"/v1/runs/{seg(self.run_id)}/events")(after)

    @contextmanager
    def _first(self) -> Iterator[httpx.Response]:
        with self._client._open(self._call) as response:
            self.run_id = response.headers.get("X-Run-ID")
            self.session_id = response.headers.get("X-Session-ID")
            yield response

    def _resumable(self) -> bool:
        return self.run_id is not None  # never POST twice: that would be a second run

    def __iter__(self) -> Iterator[StreamItem]:
        if self._iterator is None:
            self._iterator = follow(
                self._open, after=0, backoff=self._client.backoff, resumable=self._resumable
            )
        return self._iterator

    def cancel(self) -> None:
        """Cancels the run (POST /v1/runs/{id}/cancel); its stream then ends with `error`."""
        if self.run_id is not None:
            self._client.cancel_run(self.run_id)

    def answer(self, request_id: str, value: str | bool) -> Json:
        if self.run_id is None:
            raise StreamError("no run yet: iterate the stream first")
        return self._client.answer_run(self.run_id, request_id, value)

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()

    def __enter__(self) -> RunStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
