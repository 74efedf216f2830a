"""Each operation of the API as a Call (method, path, body...), shared by Client and
AsyncClient, which only differ in how they send it. ``safe`` calls may be retried: GETs, and
POSTs carrying an Idempotency-Key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from agent_service_client.auth import Credentials

Json = dict[str, Any]
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SETTLE_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)


def settling(call: Call, response_code: str, tries: int) -> float | None:
    """The wait before trying ``call`` again after a 409 ``response_code``, or None."""
    if response_code in call.settling and tries < len(SETTLE_DELAYS):
        return SETTLE_DELAYS[tries]
    return None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    authenticated: bool = True
    # Conflicts that clear up by themselves within moments: retried for up to ~2 s.
    settling: frozenset[str] = frozenset()

    @property
    def safe(self) -> bool:
        return self.method in ("GET", "HEAD") or "Idempotency-Key" in self.headers

    def query(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if v is not None}


def seg(value: str) -> str:
    """A path segment, escaped (an id with a slash must not reach another route)."""
    return quote(value, safe="")


def run_body(
    input: str | Json,  # noqa: A002 - the API's name for it
    *,
    session_id: str | None = None,
    params: Json | None = None,
    max_steps: int | None = None,
    store: bool | None = None,
    on_disconnect: str | None = None,
    if_busy: str | None = None,
) -> Json:
    body: Json = {"input": input}
    options = {
        "session_id": session_id,
        "params": params,
        "max_steps": max_steps,
        "store": store,
        "on_disconnect": on_disconnect,
        "if_busy": if_busy,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def login_call(credentials: Credentials) -> Call:
    return Call("POST", "/v1/auth/token", form=credentials.login_form(), authenticated=False)


def task_body(agent: str, input: str | Json, **options: Any) -> Json:  # noqa: A002
    return {"agent": agent, **run_body(input, **options)}


def paging(limit: int | None, offset: int | None, **more: Any) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, **more}
