"""The API's plain JSON operations, written once for both clients: ``R`` is what sending a
call gives, ``Json`` for Client and ``Awaitable[Json]`` for AsyncClient. Streams, invoke and
waiting are in each client, since they differ in more than awaiting."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from agent_service_client.calls import Call, Json, paging, seg, task_body

R = TypeVar("R")
Answer = str | bool


class Operations(Generic[R]):
    def _json(self, call: Call) -> R:
        raise NotImplementedError

    # -- service ---------------------------------------------------------------------------
    def health(self) -> R:
        return self._json(Call("GET", "/health", authenticated=False))

    def me(self) -> R:
        return self._json(Call("GET", "/v1/auth/me"))

    def logout(self) -> R:
        return self._json(Call("POST", "/v1/auth/logout"))

    # -- agents and tools --------------------------------------------------------------------
    def list_agents(self) -> R:
        return self._json(Call("GET", "/v1/agents"))

    def get_agent(self, agent: str) -> R:
        return self._json(Call("GET", f"/v1/agents/{seg(agent)}"))

    def list_tools(self, *, limit: int | None = None, offset: int | None = None) -> R:
        return self._json(Call("GET", "/v1/tools", params=paging(limit, offset)))

    # -- runs --------------------------------------------------------------------------------
    def list_runs(
        self,
        *,
        session_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> R:
        params = paging(limit, offset, session_id=session_id, status=status)
        return self._json(Call("GET", "/v1/runs", params=params))

    def get_run(self, run_id: str) -> R:
        return self._json(Call("GET", f"/v1/runs/{seg(run_id)}"))

    def answer_run(self, run_id: str, request_id: str, value: Answer) -> R:
        body = {"request_id": request_id, "value": value}
        return self._json(Call("POST", f"/v1/runs/{seg(run_id)}/input", json=body))

    def cancel_run(self, run_id: str) -> R:
        return self._json(Call("POST", f"/v1/runs/{seg(run_id)}/cancel"))

    # -- sessions ----------------------------------------------------------------------------
    def create_session(self, agent: str) -> R:
        return self._json(Call("POST", "/v1/sessions", json={"agent": agent}))

    def list_sessions(self, *, limit: int | None = None, offset: int | None = None) -> R:
        return self._json(Call("GET", "/v1/sessions", params=paging(limit, offset)))

    def get_session(self, session_id: str) -> R:
        return self._json(Call("GET", f"/v1/sessions/{seg(session_id)}"))

    def delete_session(self, session_id: str) -> R:
        return self._json(Call("DELETE", f"/v1/sessions/{seg(session_id)}"))

    def list_session_messages(
        self, session_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> R:
        path = f"/v1/sessions/{seg(session_id)}/messages"
        return self._json(Call("GET", path, params=paging(limit, offset)))

    # -- usage and budgets -------------------------------------------------------------------
    def usage(
        self,
        *,
        from_: str | None = None,
        to: str | None = None,
        group_by: list[str] | None = None,
        principal: str | None = None,
    ) -> R:
        """Model tokens by UTC day (``from_``/``to``: YYYY-MM-DD), grouped by any of day,
        agent, model, cached, principal; ``principal`` (admin): another's id, or ``*``."""
        params = {"from": from_, "to": to, "group_by": group_by, "principal": principal}
        return self._json(Call("GET", "/v1/usage", params=params))

    def budget(self) -> R:
        return self._json(Call("GET", "/v1/usage/budget"))

    # -- webhooks ----------------------------------------------------------------------------
    def create_webhook(self, url: str, events: list[str], *, description: str = "") -> R:
        """Subscribes ``url`` to ``events`` (run.completed, task.failed, ...); the answer
        holds the signing ``secret``, shown this once."""
        body = {"url": url, "events": events, "description": description}
        return self._json(Call("POST", "/v1/webhooks", json=body))

    def list_webhooks(self) -> R:
        return self._json(Call("GET", "/v1/webhooks"))

    def get_webhook(self, webhook_id: str) -> R:
        return self._json(Call("GET", f"/v1/webhooks/{seg(webhook_id)}"))

    def delete_webhook(self, webhook_id: str) -> R:
        return self._json(Call("DELETE", f"/v1/webhooks/{seg(webhook_id)}"))

    def list_webhook_deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> R:
        path = f"/v1/webhooks/{seg(webhook_id)}/deliveries"
        return self._json(Call("GET", path, params=paging(limit, offset, status=status)))

    def retry_webhook_delivery(self, webhook_id: str, delivery_id: str) -> R:
        path = f"/v1/webhooks/{seg(webhook_id)}/deliveries/{seg(delivery_id)}/retry"
        return self._json(Call("POST", path))

    # -- background tasks --------------------------------------------------------------------
    def submit_task(
        self,
        agent: str,
        input: str | Json,  # noqa: A002 - the API's name for it
        *,
        idempotency_key: str | None = None,
        session_id: str | None = None,
        params: Json | None = None,
        max_steps: int | None = None,
    ) -> R:
        """With ``idempotency_key`` a retried submit (by this client after a lost answer, or
        by you) returns the first task instead of starting a second one."""
        body = task_body(agent, input, session_id=session_id, params=params, max_steps=max_steps)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(Call("POST", "/v1/tasks", json=body, headers=headers))

    def list_tasks(
        self, *, status: str | None = None, limit: int | None = None, offset: int | None = None
    ) -> R:
        return self._json(Call("GET", "/v1/tasks", params=paging(limit, offset, status=status)))

    def get_task(self, task_id: str) -> R:
        return self._json(Call("GET", f"/v1/tasks/{seg(task_id)}"))

    def cancel_task(self, task_id: str) -> R:
        return self._json(Call("DELETE", f"/v1/tasks/{seg(task_id)}"))

    def control_task(self, task_id: str, action: Literal["pause", "resume", "stop"]) -> R:
        body = {"action": action}
        return self._json(Call("POST", f"/v1/tasks/{seg(task_id)}/control", json=body))

    def answer_task(self, task_id: str, request_id: str, value: Answer) -> R:
        """Answers the question the task's ``input_required`` event asked. A server older
        than the client could send the event moments before the task's record said it waits
        (409 no_input_pending): that answer is tried again for up to ~2 s."""
        body = {"request_id": request_id, "value": value}
        path = f"/v1/tasks/{seg(task_id)}/input"
        return self._json(Call("POST", path, json=body, settling=frozenset({"no_input_pending"})))

    def task_steps(self, task_id: str, *, limit: int | None = None, offset: int | None = None) -> R:
        path = f"/v1/tasks/{seg(task_id)}/steps"
        return self._json(Call("GET", path, params=paging(limit, offset)))

    def task_tools(self, task_id: str, *, limit: int | None = None) -> R:
        path = f"/v1/tasks/{seg(task_id)}/tools"
        return self._json(Call("GET", path, params={"limit": limit}))

    def task_plan(self, task_id: str) -> R:
        return self._json(Call("GET", f"/v1/tasks/{seg(task_id)}/plan"))

    def get_task_memory(self, task_id: str) -> R:
        return self._json(Call("GET", f"/v1/tasks/{seg(task_id)}/memory"))

    # -- API keys and users (admin, or tenant:admin in its own tenant) ----------------------
    # ``tenant_id``: the tenant acted in (admin only; unset = the default tenant, or every
    # tenant for a listing); a tenant:admin always acts in its own.
    def list_api_keys(self, *, tenant_id: str | None = None) -> R:
        return self._json(Call("GET", "/v1/auth/api-keys", params={"tenant_id": tenant_id}))

    def create_api_key(
        self,
        name: str,
        scopes: list[str],
        *,
        expires_in: int | None = None,
        tenant_id: str | None = None,
    ) -> R:
        """With ``tenant_id`` the key is a principal of that tenant (never ``admin``)."""
        body: dict[str, Any] = {"name": name, "scopes": scopes}
        if expires_in is not None:
            body["expires_in"] = expires_in
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        return self._json(Call("POST", "/v1/auth/api-keys", json=body))

    def revoke_api_key(self, key_id: str) -> R:
        return self._json(Call("DELETE", f"/v1/auth/api-keys/{seg(key_id)}"))

    def list_users(self, *, tenant_id: str | None = None) -> R:
        return self._json(Call("GET", "/v1/auth/users", params={"tenant_id": tenant_id}))

    def create_user(
        self, username: str, password: str, scopes: list[str], *, tenant_id: str | None = None
    ) -> R:
        """With ``tenant_id`` the user signs in as ``<tenant_id>/<username>`` (never
        ``admin``); the user routes take ``username`` plus that ``tenant_id``."""
        body: dict[str, Any] = {"username": username, "password": password, "scopes": scopes}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        return self._json(Call("POST", "/v1/auth/users", json=body))

    def get_user(self, username: str, *, tenant_id: str | None = None) -> R:
        path = f"/v1/auth/users/{seg(username)}"
        return self._json(Call("GET", path, params={"tenant_id": tenant_id}))

    def set_user_scopes(
        self, username: str, scopes: list[str], *, tenant_id: str | None = None
    ) -> R:
        path = f"/v1/auth/users/{seg(username)}"
        params = {"tenant_id": tenant_id}
        return self._json(Call("PATCH", path, json={"scopes": scopes}, params=params))

    def delete_user(self, username: str, *, tenant_id: str | None = None) -> R:
        path = f"/v1/auth/users/{seg(username)}"
        return self._json(Call("DELETE", path, params={"tenant_id": tenant_id}))

    def disable_user(self, username: str, *, tenant_id: str | None = None) -> R:
        path = f"/v1/auth/users/{seg(username)}/disable"
        return self._json(Call("POST", path, params={"tenant_id": tenant_id}))

    def enable_user(self, username: str, *, tenant_id: str | None = None) -> R:
        path = f"/v1/auth/users/{seg(username)}/enable"
        return self._json(Call("POST", path, params={"tenant_id": tenant_id}))

    def set_user_password(self, username: str, password: str, *, tenant_id: str | None = None) -> R:
        path = f"/v1/auth/users/{seg(username)}/password"
        params = {"tenant_id": tenant_id}
        return self._json(Call("PUT", path, json={"password": password}, params=params))

    def revoke_user_tokens(self, username: str, *, tenant_id: str | None = None) -> R:
        path = f"/v1/auth/users/{seg(username)}/revoke-tokens"
        return self._json(Call("POST", path, params={"tenant_id": tenant_id}))

    # -- tenants (admin; a tenant:admin reads its own) ---------------------------------------
    def create_tenant(self, tenant_id: str, name: str, *, policy: Json | None = None) -> R:
        """A tenant (``tenant_id``: 1-32 lowercase letters, digits or '-', never changed)
        with its ``policy`` (rate_limit, max_concurrent_runs, max_active_tasks,
        budget_tokens_per_run/_day/_month, allowed_agents; unset = the deployment's)."""
        body: Json = {"id": tenant_id, "name": name}
        if policy is not None:
            body["policy"] = policy
        return self._json(Call("POST", "/v1/tenants", json=body))

    def list_tenants(self) -> R:
        return self._json(Call("GET", "/v1/tenants"))

    def get_tenant(self, tenant_id: str) -> R:
        return self._json(Call("GET", f"/v1/tenants/{seg(tenant_id)}"))

    def update_tenant(
        self, tenant_id: str, *, name: str | None = None, policy: Json | None = None
    ) -> R:
        """Renames the tenant and/or replaces its whole ``policy`` (send every field to keep)."""
        body = {k: v for k, v in {"name": name, "policy": policy}.items() if v is not None}
        return self._json(Call("PATCH", f"/v1/tenants/{seg(tenant_id)}", json=body))

    def delete_tenant(self, tenant_id: str) -> R:
        """Deletes its users and revokes its API keys with it."""
        return self._json(Call("DELETE", f"/v1/tenants/{seg(tenant_id)}"))
