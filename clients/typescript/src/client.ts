/** AgentServiceClient: the native API of agent-service (auth, agents, runs, sessions,
 * tasks) over the platform's fetch, in browsers and Node 18+. */
import { ApiError, apiError } from "./errors.js";
import { EventStream, sleep, type StreamOptions } from "./stream.js";
import type {
  Accepted,
  AgentInfo,
  AgentList,
  AgentRunBody,
  ApiKeyCreate,
  ApiKeyCreated,
  ApiKeyList,
  EventList,
  InvokeResponse,
  Liveness,
  MessageList,
  Principal,
  QueryOf,
  Readiness,
  RunEvent,
  RunInfo,
  RunList,
  SessionCreate,
  SessionList,
  SessionResponse,
  TaskControl,
  TaskCreate,
  TaskEvent,
  TaskInfo,
  TaskList,
  TaskMemory,
  TaskResult,
  TaskSubmitted,
  TenantCreate,
  TenantInfo,
  TenantList,
  TenantUpdate,
  TokenResponse,
  ToolList,
  UserCreate,
  UserInfo,
  UserList,
  UserScopesUpdate,
  BudgetReport,
  DeliveryInfo,
  DeliveryList,
  UsageReport,
  WebhookCreate,
  WebhookCreated,
  WebhookInfo,
  WebhookList,
} from "./types.js";

export interface ClientOptions {
  /** The server, e.g. "http://localhost:8000"; "" (the default) is the page's own origin. */
  baseUrl?: string;
  /** A bearer token (a JWT from login(), or an API key sent as a bearer). */
  token?: string;
  /** An API key, sent as `X-API-Key`. */
  apiKey?: string;
  /** Another fetch (tests, proxies); default the platform's. */
  fetch?: typeof fetch;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;

/** A run's event stream, with the ids the server named when it started. */
export class RunStream extends EventStream<RunEvent> {
  runId = "";
  sessionId: string | null = null;
}

function randomId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

const FINISHED = new Set(["completed", "failed", "cancelled"]);

export class AgentServiceClient {
  readonly baseUrl: string;
  /** The bearer token in use (set by login(), cleared by logout()). */
  token: string | null;
  apiKey: string | null;
  private readonly fetcher: typeof fetch;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.apiKey = options.apiKey ?? null;
    const platform = options.fetch;
    // The browser's fetch must be called unbound from window, never as a method of ours.
    this.fetcher = platform ?? ((input, init) => globalThis.fetch(input, init));
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private url(path: string, query?: Query): string {
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (Array.isArray(value)) for (const item of value) params.append(key, String(item));
        else if (value !== undefined && value !== null) params.set(key, String(value));
      }
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    return url;
  }

  private headers(extra?: Record<string, string>): Record<string, string> {
    const headers: Record<string, string> = { Accept: "application/json", ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    else if (this.apiKey) headers["X-API-Key"] = this.apiKey;
    return headers;
  }

  /** One request; a non-2xx answer throws ApiError. */
  async raw(
    method: string,
    path: string,
    init: { query?: Query; json?: unknown; body?: BodyInit; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const headers = this.headers(init.headers);
    let body = init.body;
    if (init.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(init.json);
    }
    const response = await this.fetcher(this.url(path, init.query), {
      method,
      headers,
      body,
      signal: init.signal,
      cache: "no-store",
    });
    if (!response.ok) throw await apiError(response);
    return response;
  }

  private async json<T>(method: string, path: string, init: Parameters<AgentServiceClient["raw"]>[2] = {}): Promise<T> {
    const response = await this.raw(method, path, init);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  private static segment(value: string): string {
    return encodeURIComponent(value);
  }

  // ---- auth -------------------------------------------------------------------------------

  /** Password login: the token is kept for the next calls and returned. */
  async login(username: string, password: string, options: RequestOptions = {}): Promise<TokenResponse> {
    const response = await this.fetcher(this.url("/v1/auth/token"), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ username, password }).toString(),
      signal: options.signal,
      cache: "no-store",
    });
    if (!response.ok) throw await apiError(response);
    const token = (await response.json()) as TokenResponse;
    this.token = token.access_token;
    return token;
  }

  /** Revokes the session token and forgets it. */
  async logout(options: RequestOptions = {}): Promise<void> {
    await this.raw("POST", "/v1/auth/logout", options);
    this.token = null;
  }

  me(options: RequestOptions = {}): Promise<Principal> {
    return this.json("GET", "/v1/auth/me", options);
  }

  /** The API keys of one tenant (`tenant_id`; admin without it: of every tenant). */
  listApiKeys(query: QueryOf<"/v1/auth/api-keys", "get"> = {}, options: RequestOptions = {}): Promise<ApiKeyList> {
    return this.json("GET", "/v1/auth/api-keys", { query: query as Query, ...options });
  }

  /** With `tenant_id` the key's principal belongs to that tenant (never `admin`). */
  createApiKey(body: ApiKeyCreate, options: RequestOptions = {}): Promise<ApiKeyCreated> {
    return this.json("POST", "/v1/auth/api-keys", { json: body, ...options });
  }

  async revokeApiKey(keyId: string, options: RequestOptions = {}): Promise<void> {
    await this.raw("DELETE", `/v1/auth/api-keys/${AgentServiceClient.segment(keyId)}`, options);
  }

  // ---- users (admin, or tenant:admin in its own tenant) -----------------------------------
  // `tenant_id` (query): the tenant acted in, admin only (unset: the default tenant, or every
  // tenant for listUsers); a tenant:admin always acts in its own.

  listUsers(query: QueryOf<"/v1/auth/users", "get"> = {}, options: RequestOptions = {}): Promise<UserList> {
    return this.json("GET", "/v1/auth/users", { query: query as Query, ...options });
  }

  /** With `tenant_id` the user signs in as `<tenant_id>/<username>` (never `admin`). */
  createUser(body: UserCreate, options: RequestOptions = {}): Promise<UserInfo> {
    return this.json("POST", "/v1/auth/users", { json: body, ...options });
  }

  getUser(
    username: string,
    query: QueryOf<"/v1/auth/users/{username}", "get"> = {},
    options: RequestOptions = {},
  ): Promise<UserInfo> {
    return this.json("GET", `/v1/auth/users/${AgentServiceClient.segment(username)}`, { query: query as Query, ...options });
  }

  setUserScopes(
    username: string,
    body: UserScopesUpdate,
    query: QueryOf<"/v1/auth/users/{username}", "patch"> = {},
    options: RequestOptions = {},
  ): Promise<UserInfo> {
    return this.json("PATCH", `/v1/auth/users/${AgentServiceClient.segment(username)}`, {
      json: body,
      query: query as Query,
      ...options,
    });
  }

  async deleteUser(
    username: string,
    query: QueryOf<"/v1/auth/users/{username}", "delete"> = {},
    options: RequestOptions = {},
  ): Promise<void> {
    await this.raw("DELETE", `/v1/auth/users/${AgentServiceClient.segment(username)}`, { query: query as Query, ...options });
  }

  disableUser(
    username: string,
    query: QueryOf<"/v1/auth/users/{username}/disable", "post"> = {},
    options: RequestOptions = {},
  ): Promise<UserInfo> {
    return this.json("POST", `/v1/auth/users/${AgentServiceClient.segment(username)}/disable`, {
      query: query as Query,
      ...options,
    });
  }

  enableUser(
    username: string,
    query: QueryOf<"/v1/auth/users/{username}/enable", "post"> = {},
    options: RequestOptions = {},
  ): Promise<UserInfo> {
    return this.json("POST", `/v1/auth/users/${AgentServiceClient.segment(username)}/enable`, {
      query: query as Query,
      ...options,
    });
  }

  async setUserPassword(
    username: string,
    password: string,
    query: QueryOf<"/v1/auth/users/{username}/password", "put"> = {},
    options: RequestOptions = {},
  ): Promise<void> {
    await this.raw("PUT", `/v1/auth/users/${AgentServiceClient.segment(username)}/password`, {
      json: { password },
      query: query as Query,
      ...options,
    });
  }

  async revokeUserTokens(
    username: string,
    query: QueryOf<"/v1/auth/users/{username}/revoke-tokens", "post"> = {},
    options: RequestOptions = {},
  ): Promise<void> {
    await this.raw("POST", `/v1/auth/users/${AgentServiceClient.segment(username)}/revoke-tokens`, {
      query: query as Query,
      ...options,
    });
  }

  // ---- tenants (admin; a tenant:admin reads its own) --------------------------------------

  /** A tenant and its policy (unset fields: the deployment's settings); then make its users
   * and API keys with `tenant_id`. */
  createTenant(body: TenantCreate, options: RequestOptions = {}): Promise<TenantInfo> {
    return this.json("POST", "/v1/tenants", { json: body, ...options });
  }

  listTenants(options: RequestOptions = {}): Promise<TenantList> {
    return this.json("GET", "/v1/tenants", options);
  }

  getTenant(tenantId: string, options: RequestOptions = {}): Promise<TenantInfo> {
    return this.json("GET", `/v1/tenants/${AgentServiceClient.segment(tenantId)}`, options);
  }

  /** Renames a tenant and/or replaces its whole policy (send every field to keep). */
  updateTenant(tenantId: string, body: TenantUpdate, options: RequestOptions = {}): Promise<TenantInfo> {
    return this.json("PATCH", `/v1/tenants/${AgentServiceClient.segment(tenantId)}`, { json: body, ...options });
  }

  /** Deletes a tenant, its users and its API keys. */
  async deleteTenant(tenantId: string, options: RequestOptions = {}): Promise<void> {
    await this.raw("DELETE", `/v1/tenants/${AgentServiceClient.segment(tenantId)}`, options);
  }

  // ---- health -----------------------------------------------------------------------------

  health(options: RequestOptions = {}): Promise<Readiness> {
    return this.json("GET", "/health", options);
  }

  live(options: RequestOptions = {}): Promise<Liveness> {
    return this.json("GET", "/health/live", options);
  }

  ready(options: RequestOptions = {}): Promise<Readiness> {
    return this.json("GET", "/health/ready", options);
  }

  // ---- agents and runs --------------------------------------------------------------------

  listAgents(options: RequestOptions = {}): Promise<AgentList> {
    return this.json("GET", "/v1/agents", options);
  }

  getAgent(agent: string, options: RequestOptions = {}): Promise<AgentInfo> {
    return this.json("GET", `/v1/agents/${AgentServiceClient.segment(agent)}`, options);
  }

  listTools(options: RequestOptions = {}): Promise<ToolList> {
    return this.json("GET", "/v1/tools", options);
  }

  /** Runs an agent and answers when it has finished. */
  invoke(agent: string, body: AgentRunBody, options: RequestOptions = {}): Promise<InvokeResponse> {
    return this.json("POST", `/v1/agents/${AgentServiceClient.segment(agent)}/invoke`, { json: body, ...options });
  }

  /** Starts a run and streams its events. Resolves once the server accepted the run (a
   * refusal throws ApiError here); iterate the result for the events. A dropped connection
   * is resumed from GET /v1/runs/{id}/events; send `on_disconnect: "continue"` so the run
   * goes on meanwhile (by default the server cancels a run whose client left). Aborting the
   * signal closes the connection, which cancels such a run. */
  async stream(agent: string, body: AgentRunBody, options: StreamOptions = {}): Promise<RunStream> {
    const response = await this.raw("POST", `/v1/agents/${AgentServiceClient.segment(agent)}/stream`, {
      json: body,
      headers: { Accept: "text/event-stream" },
      signal: options.signal,
    });
    const runId = response.headers.get("X-Run-ID") ?? "";
    const stream = new RunStream(response, (lastEventId, signal) => this.openRunEvents(runId, lastEventId, signal), options);
    stream.runId = runId;
    stream.sessionId = response.headers.get("X-Session-ID");
    return stream;
  }

  /** A run's events from the start (or after `lastEventId`), live until it ends. */
  followRun(runId: string, options: StreamOptions = {}): RunStream {
    const stream = new RunStream(null, (lastEventId, signal) => this.openRunEvents(runId, lastEventId, signal), options);
    stream.runId = runId;
    return stream;
  }

  private openRunEvents(runId: string, lastEventId: string | null, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    return this.raw("GET", `/v1/runs/${AgentServiceClient.segment(runId)}/events`, { headers, signal });
  }

  listRuns(query: QueryOf<"/v1/runs", "get"> = {}, options: RequestOptions = {}): Promise<RunList> {
    return this.json("GET", "/v1/runs", { query: query as Query, ...options });
  }

  getRun(runId: string, options: RequestOptions = {}): Promise<RunInfo> {
    return this.json("GET", `/v1/runs/${AgentServiceClient.segment(runId)}`, options);
  }

  /** Answers a run's `input_required` event (its request_id) with the value asked for. */
  answerRun(runId: string, requestId: string, value: unknown, options: RequestOptions = {}): Promise<Accepted> {
    return this.json("POST", `/v1/runs/${AgentServiceClient.segment(runId)}/input`, {
      json: { request_id: requestId, value },
      ...options,
    });
  }

  cancelRun(runId: string, options: RequestOptions = {}): Promise<Accepted> {
    return this.json("POST", `/v1/runs/${AgentServiceClient.segment(runId)}/cancel`, options);
  }

  // ---- sessions ---------------------------------------------------------------------------

  createSession(body: SessionCreate, options: RequestOptions = {}): Promise<SessionResponse> {
    return this.json("POST", "/v1/sessions", { json: body, ...options });
  }

  listSessions(query: QueryOf<"/v1/sessions", "get"> = {}, options: RequestOptions = {}): Promise<SessionList> {
    return this.json("GET", "/v1/sessions", { query: query as Query, ...options });
  }

  getSession(sessionId: string, options: RequestOptions = {}): Promise<SessionResponse> {
    return this.json("GET", `/v1/sessions/${AgentServiceClient.segment(sessionId)}`, options);
  }

  async deleteSession(sessionId: string, options: RequestOptions = {}): Promise<void> {
    await this.raw("DELETE", `/v1/sessions/${AgentServiceClient.segment(sessionId)}`, options);
  }

  listSessionMessages(
    sessionId: string,
    query: QueryOf<"/v1/sessions/{session_id}/messages", "get"> = {},
    options: RequestOptions = {},
  ): Promise<MessageList> {
    return this.json("GET", `/v1/sessions/${AgentServiceClient.segment(sessionId)}/messages`, {
      query: query as Query,
      ...options,
    });
  }

  // ---- usage and budgets ------------------------------------------------------------------

  /** Model tokens by UTC day, grouped (`group_by`); `principal` (admin): another's, or `*`. */
  usage(query: QueryOf<"/v1/usage", "get"> = {}, options: RequestOptions = {}): Promise<UsageReport> {
    return this.json("GET", "/v1/usage", { query: query as Query, ...options });
  }

  budget(options: RequestOptions = {}): Promise<BudgetReport> {
    return this.json("GET", "/v1/usage/budget", options);
  }

  // ---- webhooks ---------------------------------------------------------------------------

  /** Subscribes a URL to run and task events; the answer holds the signing secret, once. */
  createWebhook(body: WebhookCreate, options: RequestOptions = {}): Promise<WebhookCreated> {
    return this.json("POST", "/v1/webhooks", { json: body, ...options });
  }

  listWebhooks(options: RequestOptions = {}): Promise<WebhookList> {
    return this.json("GET", "/v1/webhooks", options);
  }

  getWebhook(webhookId: string, options: RequestOptions = {}): Promise<WebhookInfo> {
    return this.json("GET", `/v1/webhooks/${AgentServiceClient.segment(webhookId)}`, options);
  }

  async deleteWebhook(webhookId: string, options: RequestOptions = {}): Promise<void> {
    await this.raw("DELETE", `/v1/webhooks/${AgentServiceClient.segment(webhookId)}`, options);
  }

  listWebhookDeliveries(
    webhookId: string,
    query: QueryOf<"/v1/webhooks/{webhook_id}/deliveries", "get"> = {},
    options: RequestOptions = {},
  ): Promise<DeliveryList> {
    return this.json("GET", `/v1/webhooks/${AgentServiceClient.segment(webhookId)}/deliveries`, {
      query: query as Query,
      ...options,
    });
  }

  /** Queues an ended delivery again, with its webhook-id and body. */
  retryWebhookDelivery(webhookId: string, deliveryId: string, options: RequestOptions = {}): Promise<DeliveryInfo> {
    const hook = AgentServiceClient.segment(webhookId);
    const delivery = AgentServiceClient.segment(deliveryId);
    return this.json("POST", `/v1/webhooks/${hook}/deliveries/${delivery}/retry`, options);
  }

  // ---- tasks ------------------------------------------------------------------------------

  /** Submits a background task. The Idempotency-Key (a fresh one unless given) makes a
   * retried submit return the first task instead of starting another. */
  submitTask(
    body: TaskCreate,
    options: RequestOptions & { idempotencyKey?: string } = {},
  ): Promise<TaskSubmitted> {
    return this.json("POST", "/v1/tasks", {
      json: body,
      headers: { "Idempotency-Key": options.idempotencyKey ?? randomId() },
      signal: options.signal,
    });
  }

  listTasks(query: QueryOf<"/v1/tasks", "get"> = {}, options: RequestOptions = {}): Promise<TaskList> {
    return this.json("GET", "/v1/tasks", { query: query as Query, ...options });
  }

  getTask(taskId: string, options: RequestOptions = {}): Promise<TaskInfo> {
    return this.json("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}`, options);
  }

  /** The finished task's result, or null while it is still going (the server's 202). */
  async getTaskResult(taskId: string, options: RequestOptions = {}): Promise<TaskResult | null> {
    const response = await this.raw("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}/result`, options);
    if (response.status === 202) {
      await response.body?.cancel();
      return null;
    }
    return (await response.json()) as TaskResult;
  }

  /** Waits for a task to finish (polling its result) and returns the result. */
  async waitTask(
    taskId: string,
    options: RequestOptions & { intervalMs?: number; timeoutMs?: number } = {},
  ): Promise<TaskResult> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      const result = await this.getTaskResult(taskId, options);
      if (result !== null) return result;
      if (Date.now() >= deadline) {
        throw new ApiError(408, { code: "wait_timeout", title: "The task did not finish in time", detail: taskId });
      }
      await sleep(options.intervalMs ?? 500, options.signal);
    }
  }

  /** Cancels a task (DELETE): queued never starts, running stops within a second. */
  cancelTask(taskId: string, options: RequestOptions = {}): Promise<TaskInfo> {
    return this.json("DELETE", `/v1/tasks/${AgentServiceClient.segment(taskId)}`, options);
  }

  /** pause, resume or stop a task. */
  controlTask(taskId: string, action: TaskControl["action"], options: RequestOptions = {}): Promise<TaskInfo> {
    return this.json("POST", `/v1/tasks/${AgentServiceClient.segment(taskId)}/control`, { json: { action }, ...options });
  }

  answerTask(taskId: string, requestId: string, value: unknown, options: RequestOptions = {}): Promise<TaskInfo> {
    return this.json("POST", `/v1/tasks/${AgentServiceClient.segment(taskId)}/input`, {
      json: { request_id: requestId, value },
      ...options,
    });
  }

  taskSteps(taskId: string, options: RequestOptions = {}): Promise<EventList> {
    return this.json("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}/steps`, options);
  }

  taskTools(taskId: string, options: RequestOptions = {}): Promise<EventList> {
    return this.json("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}/tools`, options);
  }

  taskPlan(taskId: string, options: RequestOptions = {}): Promise<EventList> {
    return this.json("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}/plan`, options);
  }

  getTaskMemory(taskId: string, options: RequestOptions = {}): Promise<TaskMemory> {
    return this.json("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}/memory`, options);
  }

  /** A task's events from the start (or after `lastEventId`), live until its final
   * `run_completed` or `error`; following never changes the task. */
  followTask(taskId: string, options: StreamOptions = {}): EventStream<TaskEvent> {
    return new EventStream<TaskEvent>(
      null,
      (lastEventId, signal) => {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        return this.raw("GET", `/v1/tasks/${AgentServiceClient.segment(taskId)}/events`, { headers, signal });
      },
      options,
    );
  }

  /** True for a task or run status that will not change again. */
  static finished(status: string): boolean {
    return FINISHED.has(status);
  }
}
