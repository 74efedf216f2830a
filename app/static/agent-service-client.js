// agent-service TypeScript client (clients/typescript), built by `npm run build`. Do not edit.

// src/errors.ts
var ApiError = class extends Error {
  constructor(status, problem, retryAfter = null) {
    const code = typeof problem.code === "string" ? problem.code : `http_${status}`;
    const title = typeof problem.title === "string" ? problem.title : `HTTP ${status}`;
    const detail = typeof problem.detail === "string" ? problem.detail : "";
    super(detail ? `${status} ${code}: ${detail}` : `${status} ${code}: ${title}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.type = typeof problem.type === "string" ? problem.type : "about:blank";
    this.requestId = typeof problem.request_id === "string" ? problem.request_id : null;
    this.retryable = typeof problem.retryable === "boolean" ? problem.retryable : null;
    this.retryAfter = retryAfter;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem;
  }
  /** Worth trying again later: the server said so, or the status says so. */
  get transient() {
    if (this.retryable !== null) return this.retryable;
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
};
async function apiError(response) {
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null;
  let text = "";
  try {
    text = await response.text();
  } catch {
  }
  let problem = { status: response.status };
  try {
    const body = JSON.parse(text);
    if (body !== null && typeof body === "object" && !Array.isArray(body)) {
      problem = body;
    }
  } catch {
    if (text) problem.detail = text.slice(0, 500);
  }
  if (typeof problem.title !== "string" && response.statusText) problem.title = response.statusText;
  return new ApiError(response.status, problem, retryAfter);
}
var StreamError = class extends Error {
  constructor(message, lastEventId, options) {
    super(message);
    this.name = "StreamError";
    this.lastEventId = lastEventId;
    if (options && "cause" in options) this.cause = options.cause;
  }
};

// src/sse.ts
var SseParser = class {
  constructor() {
    this.buffer = "";
    this.event = "";
    this.data = [];
    this.retry = null;
    this.lastId = null;
  }
  push(text) {
    const frames = [];
    this.buffer += text;
    const newline = /\r\n|\r|\n/;
    for (; ; ) {
      const match = newline.exec(this.buffer);
      if (match === null) break;
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const frame = this.line(this.buffer.slice(0, match.index));
      if (frame !== null) frames.push(frame);
      this.buffer = this.buffer.slice(match.index + match[0].length);
    }
    return frames;
  }
  line(text) {
    if (text === "") return this.dispatch();
    if (text.startsWith(":")) return null;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    return null;
  }
  dispatch() {
    const frame = this.data.length > 0 ? { event: this.event || "message", data: this.data.join("\n"), id: this.lastId, retry: this.retry } : null;
    this.event = "";
    this.data = [];
    this.retry = null;
    return frame;
  }
};
async function* readFrames(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SseParser();
  const stop = () => void reader.cancel().catch(() => void 0);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for (; ; ) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
  } finally {
    signal?.removeEventListener("abort", stop);
    reader.cancel().catch(() => void 0);
  }
}

// src/stream.ts
var TERMINAL = /* @__PURE__ */ new Set(["run_completed", "error"]);
function abortReason(signal) {
  return signal.reason ?? new Error("The operation was aborted.");
}
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      if (signal) reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
var EventStream = class {
  constructor(first, open, options = {}) {
    this.open = open;
    this.options = options;
    /** How many times the connection was reopened. */
    this.reconnects = 0;
    this.controller = new AbortController();
    this.started = false;
    this.first = first;
    this.lastEventId = options.lastEventId ?? null;
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) this.controller.abort(outer.reason);
      else outer.addEventListener("abort", () => this.controller.abort(outer.reason), { once: true });
    }
  }
  /** Stop reading and close the connection. */
  close() {
    this.controller.abort(new StreamError("The stream was closed.", this.lastEventId));
  }
  [Symbol.asyncIterator]() {
    if (this.started) throw new Error("An EventStream can be iterated once.");
    this.started = true;
    return this.events();
  }
  backoff(attempt) {
    const reconnect = this.options.reconnect || {};
    const initial = reconnect.initialDelayMs ?? 250;
    const max = reconnect.maxDelayMs ?? 5e3;
    const delay = Math.min(max, initial * 2 ** (attempt - 1));
    return delay / 2 + Math.random() * delay / 2;
  }
  async *events() {
    const signal = this.controller.signal;
    const retries = this.options.reconnect === false ? 0 : this.options.reconnect?.retries ?? 8;
    let response = this.first;
    this.first = null;
    let attempt = 0;
    try {
      for (; ; ) {
        let failure = null;
        let hint = null;
        let terminal = false;
        let shutdown = false;
        try {
          if (response === null) response = await this.open(this.lastEventId, signal);
          if (response.body === null) throw new StreamError("The response has no body.", this.lastEventId);
          for await (const frame of readFrames(response.body, signal)) {
            if (frame.id !== null) this.lastEventId = frame.id;
            if (frame.event === "shutdown") {
              shutdown = true;
              hint = frame.retry;
              continue;
            }
            const event = JSON.parse(frame.data);
            attempt = 0;
            terminal = TERMINAL.has(event.type);
            yield event;
          }
          if (signal.aborted) throw abortReason(signal);
          if (terminal && !shutdown) return;
          failure = new StreamError("The stream ended before the run finished.", this.lastEventId);
        } catch (error) {
          if (signal.aborted) throw abortReason(signal);
          if (error instanceof ApiError && !error.transient) throw error;
          if (error instanceof SyntaxError) throw new StreamError(`Unreadable event: ${error.message}`, this.lastEventId);
          failure = error;
          hint = error instanceof ApiError && error.retryAfter !== null ? error.retryAfter * 1e3 : null;
        }
        response = null;
        attempt += 1;
        if (attempt > retries) {
          if (failure instanceof ApiError || failure instanceof StreamError) throw failure;
          throw new StreamError("The stream broke and could not be resumed.", this.lastEventId, { cause: failure });
        }
        this.options.onReconnect?.({ attempt, lastEventId: this.lastEventId, error: failure });
        await sleep(hint ?? this.backoff(attempt), signal);
        this.reconnects += 1;
      }
    } finally {
      response?.body?.cancel().catch(() => void 0);
    }
  }
};

// src/client.ts
var RunStream = class extends EventStream {
  constructor() {
    super(...arguments);
    this.runId = "";
    this.sessionId = null;
  }
};
function randomId() {
  const crypto = globalThis.crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}
var FINISHED = /* @__PURE__ */ new Set(["completed", "failed", "cancelled"]);
var AgentServiceClient = class _AgentServiceClient {
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.apiKey = options.apiKey ?? null;
    const platform = options.fetch;
    this.fetcher = platform ?? ((input, init) => globalThis.fetch(input, init));
  }
  // ---- plumbing ---------------------------------------------------------------------------
  url(path, query) {
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (Array.isArray(value)) for (const item of value) params.append(key, String(item));
        else if (value !== void 0 && value !== null) params.set(key, String(value));
      }
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    return url;
  }
  headers(extra) {
    const headers = { Accept: "application/json", ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    else if (this.apiKey) headers["X-API-Key"] = this.apiKey;
    return headers;
  }
  /** One request; a non-2xx answer throws ApiError. */
  async raw(method, path, init = {}) {
    const headers = this.headers(init.headers);
    let body = init.body;
    if (init.json !== void 0) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(init.json);
    }
    const response = await this.fetcher(this.url(path, init.query), {
      method,
      headers,
      body,
      signal: init.signal,
      cache: "no-store"
    });
    if (!response.ok) throw await apiError(response);
    return response;
  }
  async json(method, path, init = {}) {
    const response = await this.raw(method, path, init);
    if (response.status === 204) return void 0;
    return await response.json();
  }
  static segment(value) {
    return encodeURIComponent(value);
  }
  // ---- auth -------------------------------------------------------------------------------
  /** Password login: the token is kept for the next calls and returned. */
  async login(username, password, options = {}) {
    const response = await this.fetcher(this.url("/v1/auth/token"), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ username, password }).toString(),
      signal: options.signal,
      cache: "no-store"
    });
    if (!response.ok) throw await apiError(response);
    const token = await response.json();
    this.token = token.access_token;
    return token;
  }
  /** Revokes the session token and forgets it. */
  async logout(options = {}) {
    await this.raw("POST", "/v1/auth/logout", options);
    this.token = null;
  }
  me(options = {}) {
    return this.json("GET", "/v1/auth/me", options);
  }
  /** The API keys of one tenant (`tenant_id`; admin without it: of every tenant). */
  listApiKeys(query = {}, options = {}) {
    return this.json("GET", "/v1/auth/api-keys", { query, ...options });
  }
  /** With `tenant_id` the key's principal belongs to that tenant (never `admin`). */
  createApiKey(body, options = {}) {
    return this.json("POST", "/v1/auth/api-keys", { json: body, ...options });
  }
  async revokeApiKey(keyId, options = {}) {
    await this.raw("DELETE", `/v1/auth/api-keys/${_AgentServiceClient.segment(keyId)}`, options);
  }
  // ---- users (admin, or tenant:admin in its own tenant) -----------------------------------
  // `tenant_id` (query): the tenant acted in, admin only (unset: the default tenant, or every
  // tenant for listUsers); a tenant:admin always acts in its own.
  listUsers(query = {}, options = {}) {
    return this.json("GET", "/v1/auth/users", { query, ...options });
  }
  /** With `tenant_id` the user signs in as `<tenant_id>/<username>` (never `admin`). */
  createUser(body, options = {}) {
    return this.json("POST", "/v1/auth/users", { json: body, ...options });
  }
  getUser(username, query = {}, options = {}) {
    return this.json("GET", `/v1/auth/users/${_AgentServiceClient.segment(username)}`, { query, ...options });
  }
  setUserScopes(username, body, query = {}, options = {}) {
    return this.json("PATCH", `/v1/auth/users/${_AgentServiceClient.segment(username)}`, {
      json: body,
      query,
      ...options
    });
  }
  async deleteUser(username, query = {}, options = {}) {
    await this.raw("DELETE", `/v1/auth/users/${_AgentServiceClient.segment(username)}`, { query, ...options });
  }
  disableUser(username, query = {}, options = {}) {
    return this.json("POST", `/v1/auth/users/${_AgentServiceClient.segment(username)}/disable`, {
      query,
      ...options
    });
  }
  enableUser(username, query = {}, options = {}) {
    return this.json("POST", `/v1/auth/users/${_AgentServiceClient.segment(username)}/enable`, {
      query,
      ...options
    });
  }
  async setUserPassword(username, password, query = {}, options = {}) {
    await this.raw("PUT", `/v1/auth/users/${_AgentServiceClient.segment(username)}/password`, {
      json: { password },
      query,
      ...options
    });
  }
  async revokeUserTokens(username, query = {}, options = {}) {
    await this.raw("POST", `/v1/auth/users/${_AgentServiceClient.segment(username)}/revoke-tokens`, {
      query,
      ...options
    });
  }
  // ---- tenants (admin; a tenant:admin reads its own) --------------------------------------
  /** A tenant and its policy (unset fields: the deployment's settings); then make its users
   * and API keys with `tenant_id`. */
  createTenant(body, options = {}) {
    return this.json("POST", "/v1/tenants", { json: body, ...options });
  }
  listTenants(options = {}) {
    return this.json("GET", "/v1/tenants", options);
  }
  getTenant(tenantId, options = {}) {
    return this.json("GET", `/v1/tenants/${_AgentServiceClient.segment(tenantId)}`, options);
  }
  /** Renames a tenant and/or replaces its whole policy (send every field to keep). */
  updateTenant(tenantId, body, options = {}) {
    return this.json("PATCH", `/v1/tenants/${_AgentServiceClient.segment(tenantId)}`, { json: body, ...options });
  }
  /** Deletes a tenant, its users and its API keys. */
  async deleteTenant(tenantId, options = {}) {
    await this.raw("DELETE", `/v1/tenants/${_AgentServiceClient.segment(tenantId)}`, options);
  }
  // ---- health -----------------------------------------------------------------------------
  health(options = {}) {
    return this.json("GET", "/health", options);
  }
  live(options = {}) {
    return this.json("GET", "/health/live", options);
  }
  ready(options = {}) {
    return this.json("GET", "/health/ready", options);
  }
  // ---- agents and runs --------------------------------------------------------------------
  listAgents(options = {}) {
    return this.json("GET", "/v1/agents", options);
  }
  getAgent(agent, options = {}) {
    return this.json("GET", `/v1/agents/${_AgentServiceClient.segment(agent)}`, options);
  }
  listTools(options = {}) {
    return this.json("GET", "/v1/tools", options);
  }
  /** Runs an agent and answers when it has finished. */
  invoke(agent, body, options = {}) {
    return this.json("POST", `/v1/agents/${_AgentServiceClient.segment(agent)}/invoke`, { json: body, ...options });
  }
  /** Starts a run and streams its events. Resolves once the server accepted the run (a
   * refusal throws ApiError here); iterate the result for the events. A dropped connection
   * is resumed from GET /v1/runs/{id}/events; send `on_disconnect: "continue"` so the run
   * goes on meanwhile (by default the server cancels a run whose client left). Aborting the
   * signal closes the connection, which cancels such a run. */
  async stream(agent, body, options = {}) {
    const response = await this.raw("POST", `/v1/agents/${_AgentServiceClient.segment(agent)}/stream`, {
      json: body,
      headers: { Accept: "text/event-stream" },
      signal: options.signal
    });
    const runId = response.headers.get("X-Run-ID") ?? "";
    const stream = new RunStream(response, (lastEventId, signal) => this.openRunEvents(runId, lastEventId, signal), options);
    stream.runId = runId;
    stream.sessionId = response.headers.get("X-Session-ID");
    return stream;
  }
  /** A run's events from the start (or after `lastEventId`), live until it ends. */
  followRun(runId, options = {}) {
    const stream = new RunStream(null, (lastEventId, signal) => this.openRunEvents(runId, lastEventId, signal), options);
    stream.runId = runId;
    return stream;
  }
  openRunEvents(runId, lastEventId, signal) {
    const headers = { Accept: "text/event-stream" };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    return this.raw("GET", `/v1/runs/${_AgentServiceClient.segment(runId)}/events`, { headers, signal });
  }
  listRuns(query = {}, options = {}) {
    return this.json("GET", "/v1/runs", { query, ...options });
  }
  getRun(runId, options = {}) {
    return this.json("GET", `/v1/runs/${_AgentServiceClient.segment(runId)}`, options);
  }
  /** Answers a run's `input_required` event (its request_id) with the value asked for. */
  answerRun(runId, requestId, value, options = {}) {
    return this.json("POST", `/v1/runs/${_AgentServiceClient.segment(runId)}/input`, {
      json: { request_id: requestId, value },
      ...options
    });
  }
  cancelRun(runId, options = {}) {
    return this.json("POST", `/v1/runs/${_AgentServiceClient.segment(runId)}/cancel`, options);
  }
  // ---- sessions ---------------------------------------------------------------------------
  createSession(body, options = {}) {
    return this.json("POST", "/v1/sessions", { json: body, ...options });
  }
  listSessions(query = {}, options = {}) {
    return this.json("GET", "/v1/sessions", { query, ...options });
  }
  getSession(sessionId, options = {}) {
    return this.json("GET", `/v1/sessions/${_AgentServiceClient.segment(sessionId)}`, options);
  }
  async deleteSession(sessionId, options = {}) {
    await this.raw("DELETE", `/v1/sessions/${_AgentServiceClient.segment(sessionId)}`, options);
  }
  listSessionMessages(sessionId, query = {}, options = {}) {
    return this.json("GET", `/v1/sessions/${_AgentServiceClient.segment(sessionId)}/messages`, {
      query,
      ...options
    });
  }
  // ---- usage and budgets ------------------------------------------------------------------
  /** Model tokens by UTC day, grouped (`group_by`); `principal` (admin): another's, or `*`. */
  usage(query = {}, options = {}) {
    return this.json("GET", "/v1/usage", { query, ...options });
  }
  budget(options = {}) {
    return this.json("GET", "/v1/usage/budget", options);
  }
  // ---- webhooks ---------------------------------------------------------------------------
  /** Subscribes a URL to run and task events; the answer holds the signing secret, once. */
  createWebhook(body, options = {}) {
    return this.json("POST", "/v1/webhooks", { json: body, ...options });
  }
  listWebhooks(options = {}) {
    return this.json("GET", "/v1/webhooks", options);
  }
  getWebhook(webhookId, options = {}) {
    return this.json("GET", `/v1/webhooks/${_AgentServiceClient.segment(webhookId)}`, options);
  }
  async deleteWebhook(webhookId, options = {}) {
    await this.raw("DELETE", `/v1/webhooks/${_AgentServiceClient.segment(webhookId)}`, options);
  }
  listWebhookDeliveries(webhookId, query = {}, options = {}) {
    return this.json("GET", `/v1/webhooks/${_AgentServiceClient.segment(webhookId)}/deliveries`, {
      query,
      ...options
    });
  }
  /** Queues an ended delivery again, with its webhook-id and body. */
  retryWebhookDelivery(webhookId, deliveryId, options = {}) {
    const hook = _AgentServiceClient.segment(webhookId);
    const delivery = _AgentServiceClient.segment(deliveryId);
    return this.json("POST", `/v1/webhooks/${hook}/deliveries/${delivery}/retry`, options);
  }
  // ---- tasks ------------------------------------------------------------------------------
  /** Submits a background task. The Idempotency-Key (a fresh one unless given) makes a
   * retried submit return the first task instead of starting another. */
  submitTask(body, options = {}) {
    return this.json("POST", "/v1/tasks", {
      json: body,
      headers: { "Idempotency-Key": options.idempotencyKey ?? randomId() },
      signal: options.signal
    });
  }
  listTasks(query = {}, options = {}) {
    return this.json("GET", "/v1/tasks", { query, ...options });
  }
  getTask(taskId, options = {}) {
    return this.json("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}`, options);
  }
  /** The finished task's result, or null while it is still going (the server's 202). */
  async getTaskResult(taskId, options = {}) {
    const response = await this.raw("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/result`, options);
    if (response.status === 202) {
      await response.body?.cancel();
      return null;
    }
    return await response.json();
  }
  /** Waits for a task to finish (polling its result) and returns the result. */
  async waitTask(taskId, options = {}) {
    const deadline = options.timeoutMs === void 0 ? Infinity : Date.now() + options.timeoutMs;
    for (; ; ) {
      const result = await this.getTaskResult(taskId, options);
      if (result !== null) return result;
      if (Date.now() >= deadline) {
        throw new ApiError(408, { code: "wait_timeout", title: "The task did not finish in time", detail: taskId });
      }
      await sleep(options.intervalMs ?? 500, options.signal);
    }
  }
  /** Cancels a task (DELETE): queued never starts, running stops within a second. */
  cancelTask(taskId, options = {}) {
    return this.json("DELETE", `/v1/tasks/${_AgentServiceClient.segment(taskId)}`, options);
  }
  /** pause, resume or stop a task. */
  controlTask(taskId, action, options = {}) {
    return this.json("POST", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/control`, { json: { action }, ...options });
  }
  answerTask(taskId, requestId, value, options = {}) {
    return this.json("POST", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/input`, {
      json: { request_id: requestId, value },
      ...options
    });
  }
  taskSteps(taskId, options = {}) {
    return this.json("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/steps`, options);
  }
  taskTools(taskId, options = {}) {
    return this.json("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/tools`, options);
  }
  taskPlan(taskId, options = {}) {
    return this.json("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/plan`, options);
  }
  getTaskMemory(taskId, options = {}) {
    return this.json("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/memory`, options);
  }
  /** A task's events from the start (or after `lastEventId`), live until its final
   * `run_completed` or `error`; following never changes the task. */
  followTask(taskId, options = {}) {
    return new EventStream(
      null,
      (lastEventId, signal) => {
        const headers = { Accept: "text/event-stream" };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        return this.raw("GET", `/v1/tasks/${_AgentServiceClient.segment(taskId)}/events`, { headers, signal });
      },
      options
    );
  }
  /** True for a task or run status that will not change again. */
  static finished(status) {
    return FINISHED.has(status);
  }
};
export {
  AgentServiceClient,
  ApiError,
  EventStream,
  RunStream,
  SseParser,
  StreamError,
  readFrames
};
