// The stream machinery on its own (no server): SSE parsing across chunk boundaries, the
// reconnect rules (Last-Event-ID, backoff, a shutdown frame's retry hint, events_missed
// surfaced, a refusal not retried, a budget), and aborting during a backoff. Responses
// are built here from SSE text; the real server is exercised by e2e.test.mjs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, EventStream, SseParser, StreamError } from "../dist/agent-service-client.js";

const frame = (seq, type, extra = {}) =>
  `id: ${seq}\nevent: ${type}\ndata: ${JSON.stringify({ seq, type, ...extra })}\n\n`;

function body(chunks, { breakAtEnd = false } = {}) {
  const encoder = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < chunks.length) return controller.enqueue(encoder.encode(chunks[i++]));
      if (breakAtEnd) return controller.error(new TypeError("network connection lost"));
      return controller.close();
    },
  });
}

const sse = (chunks, options) => new Response(body(chunks, options), { headers: { "Content-Type": "text/event-stream" } });

async function collect(stream) {
  const seen = [];
  for await (const event of stream) seen.push(event);
  return seen;
}

test("the parser joins lines split across chunks, CRLF and comments", () => {
  const parser = new SseParser();
  const text = ": keep-alive\r\nid: 7\r\nevent: token\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n";
  const frames = [];
  for (const piece of text.match(/[\s\S]{1,3}/g)) frames.push(...parser.push(piece));
  assert.deepEqual(frames, [{ event: "token", data: '{"a":\n1}', id: "7", retry: null }]);
});

test("a dropped stream resumes after the last complete frame", async () => {
  const asked = [];
  const opened = [
    sse([frame(1, "run_started"), frame(2, "token", { text: "a" }), "id: 3\nevent: tok"], { breakAtEnd: true }),
    sse([frame(3, "token", { text: "b" }), frame(4, "run_completed", { output: "ab" })]),
  ];
  const stream = new EventStream(null, async (lastEventId) => {
    asked.push(lastEventId);
    return opened.shift();
  }, { reconnect: { initialDelayMs: 1 } });
  const seen = await collect(stream);
  assert.deepEqual(asked, [null, "2"]);
  assert.deepEqual(seen.map((e) => e.seq), [1, 2, 3, 4]);
  assert.equal(stream.reconnects, 1);
});

test("a shutdown frame reconnects after the server's retry hint; events_missed is surfaced", async () => {
  const asked = [];
  const opened = [
    sse([frame(1, "run_started"), 'event: shutdown\nretry: 5\ndata: {"type":"shutdown"}\n\n']),
    sse([`event: events_missed\ndata: ${JSON.stringify({ type: "events_missed", from_seq: 2, to_seq: 9 })}\n\n`, frame(10, "run_completed")]),
  ];
  const stream = new EventStream(null, async (lastEventId) => {
    asked.push(lastEventId);
    return opened.shift();
  });
  const seen = await collect(stream);
  assert.deepEqual(asked, [null, "1"]);
  assert.deepEqual(seen.map((e) => e.type), ["run_started", "events_missed", "run_completed"]);
});

test("a refusal is thrown at once; transient failures use the budget", async () => {
  let calls = 0;
  const refused = new EventStream(null, async () => {
    calls += 1;
    throw new ApiError(404, { code: "run_not_found", title: "Not Found", detail: "no such run" });
  });
  const error = await collect(refused).catch((e) => e);
  assert.equal(error.code, "run_not_found");
  assert.equal(calls, 1);

  calls = 0;
  const broken = new EventStream(null, async () => {
    calls += 1;
    return calls === 1 ? sse([frame(1, "token")]) : sse([]); // ends, no terminal event, no progress
  }, { reconnect: { retries: 2, initialDelayMs: 1 } });
  const failure = await collect(broken).catch((e) => e);
  assert.ok(failure instanceof StreamError);
  assert.equal(calls, 3, "the first try and two reconnects without progress");
});

test("aborting during a backoff ends the stream with the signal's reason", async () => {
  const controller = new AbortController();
  const stream = new EventStream(null, async () => sse([frame(1, "token")], { breakAtEnd: true }), {
    signal: controller.signal,
    reconnect: { initialDelayMs: 10000 },
    onReconnect: () => controller.abort(),
  });
  const error = await collect(stream).catch((e) => e);
  assert.equal(error.name, "AbortError");
});

test("close() ends a stream that is waiting for its next frame", async () => {
  let cancelled = false;
  const endless = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(frame(1, "run_started")));
    },
    cancel() {
      cancelled = true;
    },
  });
  const stream = new EventStream(new Response(endless), async () => assert.fail("no reconnect after close"));
  const seen = [];
  const error = await (async () => {
    for await (const event of stream) {
      seen.push(event.type);
      setTimeout(() => stream.close(), 10);
    }
  })().catch((e) => e);
  assert.deepEqual(seen, ["run_started"]);
  assert.ok(error instanceof StreamError, String(error));
  assert.ok(cancelled, "the connection was closed");
});
