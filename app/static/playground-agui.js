// The playground's AG-UI transport: a RunAgentInput for POST /v1/agents/{agent}/ag-ui, and a
// translator from the AG-UI events it streams back to the native events the page already
// renders, so the same conversation shows the same way over both transports. No AG-UI client
// library: the page loads nothing but its own files (CSP), and this is all it needs.
(function () {
  "use strict";

  const META = "agent-service";

  function newId() {
    return window.crypto.randomUUID();
  }

  // One user message (a new run), or a resume answering an interrupt (the run goes on).
  function runInput(threadId, text, resume) {
    const body = {
      threadId: threadId,
      runId: newId(),
      messages: text ? [{ id: newId(), role: "user", content: text }] : [],
      state: {},
      tools: [],
      context: [],
      forwardedProps: {},
    };
    if (resume) body.resume = resume;
    return body;
  }

  function usageOf(event) {
    const usage = (event.usage && event.usage[0]) || {};
    return {
      prompt_tokens: usage.inputTokens || 0,
      completion_tokens: usage.outputTokens || 0,
      total_tokens: usage.totalTokens || 0,
    };
  }

  // Keeps what spans events (message text, tool call arguments); returns the native events
  // (zero or more) for each AG-UI event, and the interrupt a RUN_FINISHED carried.
  function createTranslator() {
    const texts = new Map(); // messageId -> text so far
    const calls = new Map(); // toolCallId -> {name, args}
    const state = { interrupt: null };

    function translate(event) {
      const meta = (event.metadata && event.metadata[META]) || {};
      switch (event.type) {
        case "RUN_STARTED":
          return [{ type: "run_started", run_id: meta.runId, agent: "AG-UI", session_id: event.threadId }];
        case "TEXT_MESSAGE_START":
          texts.set(event.messageId, "");
          return [];
        case "TEXT_MESSAGE_CONTENT":
          texts.set(event.messageId, (texts.get(event.messageId) || "") + event.delta);
          return [{ type: "token", text: event.delta }];
        case "TEXT_MESSAGE_END":
          return [{ type: "message", role: "assistant", content: texts.get(event.messageId) || "" }];
        case "TOOL_CALL_START":
          calls.set(event.toolCallId, { name: event.toolCallName, args: "" });
          return [];
        case "TOOL_CALL_ARGS":
          calls.get(event.toolCallId).args += event.delta;
          return [];
        case "TOOL_CALL_END": {
          const call = calls.get(event.toolCallId);
          let args = {};
          try {
            args = JSON.parse(call.args || "{}");
          } catch (_err) {
            args = { raw: call.args };
          }
          return [{ type: "tool_call", id: event.toolCallId, name: call.name, arguments: args }];
        }
        case "TOOL_CALL_RESULT":
          return [{ type: "tool_result", id: event.toolCallId, output: event.content, success: meta.success !== false }];
        case "STEP_STARTED":
          return [];
        case "STEP_FINISHED":
          return [{
            type: "step",
            number: Number(String(event.stepName).replace(/^step /, "")),
            duration_s: meta.durationS || 0,
            success: meta.success !== false,
          }];
        case "STATE_DELTA":
          return (event.delta || [])
            .filter((op) => op.path === "/plan" && op.value)
            .map((op) => ({ type: "plan", items: op.value.items || [], reflection: op.value.reflection }));
        case "RUN_FINISHED": {
          const outcome = event.outcome || { type: "success" };
          if (outcome.type === "interrupt") {
            const interrupt = outcome.interrupts[0];
            const asked = (interrupt.metadata && interrupt.metadata[META]) || {};
            state.interrupt = interrupt;
            return [{
              type: "input_required",
              request_id: interrupt.id,
              kind: asked.kind || "text",
              prompt: interrupt.message || "",
              choices: asked.choices || null,
            }];
          }
          if (outcome.type === "cancelled") {
            return [{ type: "error", code: "cancelled", message: "The run was cancelled." }];
          }
          return [{ type: "run_completed", output: event.result || "", usage: usageOf(event) }];
        }
        case "RUN_ERROR":
          return [{ type: "error", code: event.code || "run_error", message: event.message }];
        case "CUSTOM":
          return [Object.assign({ type: String(event.name).replace(META + ".", "") }, event.value)];
        default:
          return [{ type: event.type }];
      }
    }

    return { translate: translate, state: state };
  }

  window.PlaygroundAgui = { runInput: runInput, createTranslator: createTranslator, newId: newId };
})();
