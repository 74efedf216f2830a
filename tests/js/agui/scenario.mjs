// Drives a real agent-service server with AG-UI's own JavaScript client (@ag-ui/client's
// HttpAgent) and prints one JSON line of what a user of that client would see; the pytest
// side (tests/e2e/test_agui_js.py) asserts on it.
//
// Usage: node scenario.mjs <stream|tool|interrupt|error|abort>
// Env: AGUI_BASE_URL (http://127.0.0.1:8000), AGUI_TOKEN (a bearer token).
import { HttpAgent, buildResumeArray } from "@ag-ui/client";

const base = process.env.AGUI_BASE_URL;
const token = process.env.AGUI_TOKEN;
if (!base || !token) {
  console.error("AGUI_BASE_URL and AGUI_TOKEN must be set");
  process.exit(2);
}

function agentFor(name) {
  return new HttpAgent({
    url: `${base}/v1/agents/${name}/ag-ui`,
    headers: { Authorization: `Bearer ${token}` },
  });
}

// Every event the client accepted (after its own verification), and our run id.
function recorder() {
  const seen = { types: [], runIds: [], errors: [] };
  seen.subscriber = {
    onEvent: ({ event }) => {
      seen.types.push(event.type);
    },
    onRunStartedEvent: ({ event }) => {
      seen.runIds.push(event.metadata?.["agent-service"]?.runId ?? null);
    },
    onRunErrorEvent: ({ event }) => {
      seen.errors.push({ code: event.code ?? null, message: event.message });
    },
  };
  return seen;
}

function text(messages) {
  return messages
    .filter((m) => m.role === "assistant" && typeof m.content === "string")
    .map((m) => m.content)
    .join("");
}

async function stream() {
  const agent = agentFor("chat");
  agent.addMessage({ id: "u1", role: "user", content: "Hello from the AG-UI client" });
  const seen = recorder();
  const first = await agent.runAgent({}, seen.subscriber);
  // A second turn on the same thread: the client sends the whole conversation again.
  agent.addMessage({ id: "u2", role: "user", content: "Tell me more" });
  const second = await agent.runAgent({}, seen.subscriber);
  return {
    threadId: agent.threadId,
    types: seen.types,
    runIds: seen.runIds,
    results: [first.result, second.result],
    newMessages: [text(first.newMessages), text(second.newMessages)],
    roles: agent.messages.map((m) => m.role),
  };
}

async function tool() {
  const agent = agentFor("assistant");
  agent.addMessage({ id: "u1", role: "user", content: "What is 6*7?" });
  const seen = recorder();
  const { result } = await agent.runAgent({}, seen.subscriber);
  const calls = agent.messages.flatMap((m) => m.toolCalls ?? []);
  const results = agent.messages.filter((m) => m.role === "tool");
  return {
    types: seen.types,
    result,
    state: agent.state,
    toolCalls: calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
    toolResults: results.map((m) => ({ toolCallId: m.toolCallId, content: m.content })),
  };
}

async function interrupt() {
  const agent = agentFor("approval");
  agent.addMessage({ id: "u1", role: "user", content: "Archive the old reports" });
  const seen = recorder();
  const outcomes = [];
  const subscriber = {
    ...seen.subscriber,
    onRunFinishedEvent: (params) => {
      outcomes.push(params.outcome);
    },
  };
  await agent.runAgent({}, subscriber);
  const asked = agent.pendingInterrupts.map((i) => ({ reason: i.reason, schema: i.responseSchema }));
  const priority = agent.pendingInterrupts[0];
  await agent.runAgent(
    { resume: buildResumeArray([priority], { [priority.id]: { status: "resolved", payload: "high" } }) },
    subscriber,
  );
  asked.push(...agent.pendingInterrupts.map((i) => ({ reason: i.reason, schema: i.responseSchema })));
  const confirm = agent.pendingInterrupts[0];
  const last = await agent.runAgent(
    {
      resume: buildResumeArray([confirm], {
        [confirm.id]: { status: "resolved", payload: { approved: true } },
      }),
    },
    subscriber,
  );
  return {
    asked,
    outcomes,
    result: last.result,
    pendingAfter: agent.pendingInterrupts.length,
    runIds: seen.runIds,
  };
}

async function error() {
  const agent = agentFor("chat");
  agent.addMessage({ id: "u1", role: "user", content: "Hello" });
  const seen = recorder();
  let failed = null;
  try {
    await agent.runAgent({ forwardedProps: { params: { temperature: 5 } } }, {
      ...seen.subscriber,
      onRunFailed: ({ error }) => {
        failed = String(error?.message ?? error);
      },
    });
  } catch (e) {
    failed = failed ?? String(e?.message ?? e);
  }
  // A request the server refuses before any run: the client sees the HTTP status.
  let refused = null;
  const other = agentFor("no-such-agent");
  other.addMessage({ id: "u1", role: "user", content: "Hello" });
  try {
    await other.runAgent();
  } catch (e) {
    refused = { status: e?.status ?? null, code: e?.payload?.code ?? null, message: String(e?.message) };
  }
  return { types: seen.types, errors: seen.errors, failed, refused };
}

async function abort() {
  const agent = agentFor("chat");
  agent.addMessage({ id: "u1", role: "user", content: "Write something long" });
  const seen = recorder();
  let aborted = false;
  const subscriber = {
    ...seen.subscriber,
    onTextMessageContentEvent: () => {
      if (!aborted) {
        aborted = true;
        agent.abortRun();
      }
    },
  };
  let settled = "resolved";
  try {
    await agent.runAgent({}, subscriber);
  } catch (e) {
    settled = `rejected: ${e?.name ?? e}`;
  }
  return { aborted, settled, types: seen.types, runIds: seen.runIds, threadId: agent.threadId };
}

const scenarios = { stream, tool, interrupt, error, abort };
const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
try {
  const outcome = await scenarios[name]();
  console.log(JSON.stringify(outcome));
} catch (e) {
  console.error(`scenario ${name} failed: ${e?.stack ?? e}`);
  process.exit(1);
}
