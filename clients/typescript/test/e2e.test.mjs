// The client against a real agent-service process (tests/e2e/test_ts_client.py starts it
// and passes AGENT_SERVICE_URL, AGENT_SERVICE_USERNAME, AGENT_SERVICE_PASSWORD). Runs the
// built bundle, the same file the playground serves.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { AgentServiceClient, ApiError } from "../dist/agent-service-client.js";

const baseUrl = process.env.AGENT_SERVICE_URL;
const username = process.env.AGENT_SERVICE_USERNAME;
const password = process.env.AGENT_SERVICE_PASSWORD;
const token = process.env.AGENT_SERVICE_TOKEN; // one login for all: the login route is rate-limited
assert.ok(baseUrl && username && password && token, "AGENT_SERVICE_URL/_USERNAME/_PASSWORD/_TOKEN must be set");

// Letters only (a digit would change the calculator's arithmetic): no LLM cache hits.
const unique = () => Array.from({ length: 12 }, () => "abcdefghijklmnopqrstuvwxyz"[Math.floor(Math.random() * 26)]).join("");

async function signedIn(options = {}) {
  return new AgentServiceClient({ baseUrl, token, ...options });
}

async function collect(stream, onEvent) {
  const events = [];
  for await (const event of stream) {
    events.push(event);
    if (onEvent) await onEvent(event);
  }
  return events;
}

function assertContiguous(events) {
  const seqs = events.filter((event) => event.type !== "events_missed").map((event) => event.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), "every event once, in order, none lost");
}

async function until(check, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("login", async () => {
  const client = new AgentServiceClient({ baseUrl });
  const session = await client.login(username, password);
  assert.equal(client.token, session.access_token);
  const me = await client.me();
  assert.equal(me.name, username);

  // An API key works in place of the token.
  const key = await client.createApiKey({ name: `ts-${unique()}`, scopes: ["agents:run"] });
  const keyed = new AgentServiceClient({ baseUrl, apiKey: key.key });
  assert.equal((await keyed.me()).kind, "api_key");

  // And a wrong password is an ApiError with the server's code.
  const refused = await new AgentServiceClient({ baseUrl }).login(username, "wrong-password").catch((e) => e);
  assert.ok(refused instanceof ApiError);
  assert.equal(refused.status, 401);
  assert.equal(refused.code, "invalid_credentials");

  await client.logout();
  assert.equal(client.token, null);
  const after = await new AgentServiceClient({ baseUrl, token: session.access_token }).me().catch((e) => e);
  assert.equal(after.status, 401, "the token no longer works after logout");
});

test("invoke", async () => {
  const client = await signedIn();
  const answer = await client.invoke("assistant", { input: `What is 6*7? ${unique()}` });
  assert.match(answer.output, /42/);
  const run = await client.getRun(answer.run_id);
  assert.equal(run.status, "completed");
  assert.equal(run.output, answer.output);
});

test("stream", async () => {
  const client = await signedIn();
  const stream = await client.stream("chat", { input: `Hello there ${unique()}` });
  assert.ok(stream.runId, "X-Run-ID names the run");
  const events = await collect(stream);
  const types = events.map((event) => event.type);
  assert.equal(types[0], "run_started");
  assert.equal(events[0].run_id, stream.runId);
  assert.ok(types.includes("token"));
  assert.equal(types.at(-1), "run_completed");
  const tokens = events.filter((event) => event.type === "token").map((event) => event.text).join("");
  assert.equal(events.at(-1).output, tokens, "the final output is the streamed tokens");
  assertContiguous(events);
  assert.equal(stream.reconnects, 0);
});

test("sessions", async () => {
  const client = await signedIn();
  const session = await client.createSession({ agent: "chat" });
  for (const input of [`My name is Ada ${unique()}`, "What is my name?"]) {
    const stream = await client.stream("chat", { input, session_id: session.id });
    assert.equal(stream.sessionId, session.id);
    assert.equal((await collect(stream)).at(-1).type, "run_completed");
  }
  assert.equal((await client.getSession(session.id)).message_count, 4);
  const messages = await client.listSessionMessages(session.id);
  assert.deepEqual(messages.items.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
  assert.ok((await client.listSessions()).items.some((s) => s.id === session.id));
  await client.deleteSession(session.id);
  const gone = await client.getSession(session.id).catch((e) => e);
  assert.equal(gone.status, 404);
});

test("resume", async () => {
  // A fetch that cuts the first stream in the middle of a frame, after some tokens: the
  // client must reconnect to GET /v1/runs/{id}/events with Last-Event-ID and lose nothing.
  const requests = [];
  let cut = false;
  const cutting = async (input, init) => {
    requests.push({ url: String(input), headers: { ...(init?.headers ?? {}) } });
    const response = await fetch(input, init);
    if (cut || !String(input).endsWith("/stream")) return response;
    cut = true;
    const reader = response.body.getReader();
    let tokens = 0;
    const body = new ReadableStream({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        tokens += (new TextDecoder().decode(value).match(/event: token/g) || []).length;
        if (tokens < 5) return controller.enqueue(value);
        controller.enqueue(value.slice(0, Math.floor(value.length / 2))); // half a frame
        await reader.cancel(); // the connection is gone
        controller.error(new TypeError("network connection lost"));
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  const client = await signedIn({ fetch: cutting });
  const stream = await client.stream(
    "chat",
    { input: `Tell me about the sea ${unique()}`, on_disconnect: "continue" },
    { reconnect: { initialDelayMs: 50 } },
  );
  const events = await collect(stream);
  assert.equal(stream.reconnects, 1);
  const resumed = requests.at(-1);
  assert.ok(resumed.url.endsWith(`/v1/runs/${stream.runId}/events`), resumed.url);
  assert.match(resumed.headers["Last-Event-ID"], /^\d+$/);
  assertContiguous(events);
  assert.equal(events.at(-1).type, "run_completed");
  const tokens = events.filter((event) => event.type === "token").map((event) => event.text).join("");
  assert.equal(events.at(-1).output, tokens, "no token lost or repeated");

  // Following the finished run again from an id gives exactly the events after it.
  const again = await collect(client.followRun(stream.runId, { lastEventId: "3" }));
  assert.deepEqual(again.map((e) => e.seq), events.slice(3).map((e) => e.seq));
});

test("task", async () => {
  const client = await signedIn();
  const key = `ts-${unique()}`;
  const body = { agent: "assistant", input: `What is 12*(3+4)? ${unique()}` };
  const first = await client.submitTask(body, { idempotencyKey: key });
  const retried = await client.submitTask(body, { idempotencyKey: key });
  assert.equal(retried.task_id, first.task_id, "the same key gives the same task");
  const events = await collect(client.followTask(first.task_id));
  assert.equal(events.at(-1).type, "run_completed");
  assertContiguous(events);
  const result = await client.waitTask(first.task_id, { intervalMs: 100, timeoutMs: 20000 });
  assert.equal(result.success, true);
  assert.equal(result.output, events.at(-1).output);
  assert.match(result.output, /84/);
  assert.equal((await client.getTask(first.task_id)).status, "completed");
});

test("input", async () => {
  const client = await signedIn();
  const stream = await client.stream("approval", { input: `Email the team ${unique()}` });
  const asked = [];
  const events = await collect(stream, async (event) => {
    if (event.type !== "input_required") return;
    asked.push(event.kind);
    await client.answerRun(stream.runId, event.request_id, event.kind === "choice" ? "high" : true);
  });
  assert.deepEqual(asked, ["choice", "confirm"]);
  assert.equal(events.at(-1).type, "run_completed");
  assert.match(events.at(-1).output, /^Approved at high priority\./);

  // The same through a background task.
  const task = await client.submitTask({ agent: "approval", input: `Ship it ${unique()}` });
  const taskEvents = await collect(client.followTask(task.task_id), async (event) => {
    if (event.type !== "input_required") return;
    await client.answerTask(task.task_id, event.request_id, event.kind === "choice" ? "low" : false);
  });
  assert.equal(taskEvents.at(-1).type, "run_completed");
  assert.equal((await client.waitTask(task.task_id)).output, "Not approved. No action was taken.");
});

test("abort", async () => {
  const client = await signedIn();
  const controller = new AbortController();
  const stream = await client.stream("chat", { input: `Write a long story ${unique()}` }, { signal: controller.signal });
  const seen = [];
  const outcome = await collect(stream, (event) => {
    seen.push(event.type);
    if (event.type === "token") controller.abort();
  }).catch((e) => e);
  assert.equal(outcome.name, "AbortError");
  assert.ok(!seen.includes("run_completed"));
  const run = await until(async () => {
    const record = await client.getRun(stream.runId);
    return record.status === "running" ? null : record;
  }, "the run to stop");
  assert.equal(run.status, "cancelled");
  assert.equal(run.error_code, "client_disconnected");
});

test("cancel", async () => {
  const client = await signedIn();
  // A run cancelled from elsewhere ends its stream with an `error` event `cancelled`.
  const stream = await client.stream("chat", { input: `Write a long story ${unique()}`, on_disconnect: "continue" });
  const events = await collect(stream, async (event) => {
    if (event.type === "token" && event.seq === 3) await client.cancelRun(stream.runId);
  });
  assert.equal(events.at(-1).type, "error");
  assert.equal(events.at(-1).code, "cancelled");
  assert.equal((await client.getRun(stream.runId)).status, "cancelled");

  // A task stopped with control (as DELETE would) likewise.
  const task = await client.submitTask({ agent: "chat", input: `Another long story ${unique()}` });
  let stopped = null;
  const taskEvents = await collect(client.followTask(task.task_id), async (event) => {
    if (event.type === "token" && stopped === null) stopped = await client.controlTask(task.task_id, "stop");
  });
  assert.ok(stopped !== null);
  assert.equal(taskEvents.at(-1).code, "cancelled");
  const result = await client.waitTask(task.task_id);
  assert.equal(result.success, false);
  assert.equal(result.status, "cancelled");
  assert.equal((await client.cancelTask(task.task_id)).status, "cancelled", "cancelling again changes nothing");
});

test("errors", async () => {
  const client = await signedIn();
  const missing = await client.invoke("no-such-agent", { input: "hi" }).catch((e) => e);
  assert.ok(missing instanceof ApiError);
  assert.equal(missing.status, 404);
  assert.equal(missing.code, "agent_not_found");
  assert.equal(typeof missing.title, "string");
  assert.ok(missing.detail.length > 0);
  assert.equal(missing.problem.code, "agent_not_found");

  const invalid = await client.stream("chat", { input: "" }).catch((e) => e);
  assert.ok(invalid instanceof ApiError);
  assert.equal(invalid.status, 422);
  assert.equal(invalid.code, "validation_error");
  assert.ok(invalid.errors.length > 0, "the field problems of a 422");

  // A stream that cannot be opened is not retried: the ApiError comes out of the loop.
  const unknown = await collect(client.followRun("no-such-run")).catch((e) => e);
  assert.ok(unknown instanceof ApiError);
  assert.equal(unknown.status, 404);

  const anonymous = await new AgentServiceClient({ baseUrl }).listAgents().catch((e) => e);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.code, "unauthorized");
});

test("coverage", async () => {
  // Every route the manifest maps to a method is a method of the client.
  const manifest = JSON.parse(readFileSync(new URL("../coverage.json", import.meta.url), "utf8"));
  const client = new AgentServiceClient({ baseUrl });
  const missing = Object.entries(manifest.routes)
    .filter(([, method]) => !method.startsWith("not covered"))
    .filter(([, method]) => typeof client[method] !== "function")
    .map(([route, method]) => `${route} -> ${method}`);
  assert.deepEqual(missing, []);
});
