/* agent-service playground: sign in, pick an agent, stream its reply over SSE.
 *
 * An ES module, no build step of its own: the native routes (sign-in, agents, sessions, the
 * event stream, input answers, cancel) go through the TypeScript client
 * (clients/typescript, its bundle committed as /static/agent-service-client.js), so the
 * browser and the SDK cannot drift. It runs under the page CSP (scripts from 'self',
 * connect-src 'self'). The AG-UI transport (playground-agui.js) keeps its own fetch +
 * ReadableStream reader below. The bearer token lives in the client object only (never in
 * localStorage).
 */
import { AgentServiceClient, ApiError } from "/static/agent-service-client.js";

(function () {
  "use strict";

  const API = "/v1";
  const client = new AgentServiceClient(); // this origin; holds the token after login()

  // ---- state (memory only) ----------------------------------------------------------------
  let agents = [];
  const sessions = new Map(); // agent name -> session id
  const threads = new Map(); // agent name -> AG-UI thread id (a session id the page chose)
  let run = null; // {runId, controller, live, terminal, cancelRequested, currentSegment}

  // ---- elements -----------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const el = {
    whoami: $("whoami"),
    signOut: $("sign-out"),
    signinPanel: $("signin-panel"),
    signinForm: $("signin-form"),
    username: $("username"),
    password: $("password"),
    signinButton: $("signin-button"),
    signinError: $("signin-error"),
    playground: $("playground"),
    agentSelect: $("agent-select"),
    agentDescription: $("agent-description"),
    agentCapabilities: $("agent-capabilities"),
    sessionToggle: $("session-toggle"),
    aguiToggle: $("agui-toggle"),
    sessionInfo: $("session-info"),
    newSession: $("new-session"),
    messageForm: $("message-form"),
    message: $("message"),
    send: $("send"),
    cancel: $("cancel"),
    run: $("run"),
    runStatus: $("run-status"),
    runId: $("run-id"),
    runMeta: $("run-meta"),
    runError: $("run-error"),
    inputRequest: $("input-request"),
    inputPrompt: $("input-prompt"),
    inputControls: $("input-controls"),
    inputError: $("input-error"),
    reply: $("reply"),
    final: $("final"),
    finalOutput: $("final-output"),
    eventLog: $("event-log"),
    eventCount: $("event-count"),
  };

  // ---- small helpers ------------------------------------------------------------------------
  function node(tag, props, children) {
    const element = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (key === "text") element.textContent = value;
      else if (key === "className") element.className = value;
      else if (key === "dataset") Object.assign(element.dataset, value);
      else if (key === "onclick") element.addEventListener("click", value);
      else element.setAttribute(key, value);
    });
    (children || []).forEach((child) => {
      element.append(child instanceof Node ? child : String(child));
    });
    return element;
  }

  function show(element, visible) {
    element.hidden = !visible;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    if (client.token) headers.Authorization = "Bearer " + client.token;
    return headers;
  }

  // An RFC 9457 problem (or any error body) as {status, title, detail, code}.
  async function readProblem(response) {
    const problem = { status: response.status, title: response.statusText || "Error" };
    let text = "";
    try {
      text = await response.text();
    } catch (_err) {
      return problem;
    }
    try {
      const body = JSON.parse(text);
      if (body && typeof body === "object") {
        if (body.title) problem.title = body.title;
        if (body.code) problem.code = body.code;
        if (typeof body.detail === "string") problem.detail = body.detail;
        else if (Array.isArray(body.detail) || Array.isArray(body.errors)) {
          const items = body.errors || body.detail;
          problem.detail = items
            .map((item) => (item && item.msg ? item.msg : JSON.stringify(item)))
            .join("; ");
        }
      }
    } catch (_err) {
      if (text) problem.detail = text.slice(0, 300);
    }
    return problem;
  }

  // An ApiError of the client (or any thrown error) as {status, title, detail, code}.
  function problemOf(err) {
    if (err instanceof ApiError) {
      const problem = { status: err.status, title: err.title, code: err.code };
      if (err.errors.length) problem.detail = err.errors.map((item) => item.msg || JSON.stringify(item)).join("; ");
      else if (err.detail) problem.detail = err.detail;
      return problem;
    }
    return { title: "Network error", detail: String(err && err.message) };
  }

  // A call through the client; a 401 with a token means the sign-in went stale.
  async function call(action) {
    try {
      return await action();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && client.token) {
        signOut("Your sign-in is no longer valid; sign in again.");
      }
      throw err;
    }
  }

  function renderProblem(target, problem, prefix) {
    target.replaceChildren();
    const head = [prefix, problem.title].filter(Boolean).join(": ");
    target.append(node("strong", { text: head }));
    if (problem.status) target.append(" ", node("span", { className: "muted", text: "(" + problem.status + ")" }));
    if (problem.detail) target.append(" ", node("span", { text: problem.detail }));
    if (problem.code) target.append(" ", node("code", { dataset: { testid: "error-code" }, text: problem.code }));
    show(target, true);
  }

  // ---- sign in / out ------------------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    show(el.signinError, false);
    const username = el.username.value.trim();
    const password = el.password.value;
    if (!username || !password) {
      renderProblem(el.signinError, { title: "Enter a username and a password" });
      return;
    }
    el.signinButton.disabled = true;
    try {
      await client.login(username, password);
    } catch (err) {
      renderProblem(el.signinError, problemOf(err), err instanceof ApiError ? "Sign-in failed" : "");
      if (err instanceof ApiError) el.password.select();
      el.signinButton.disabled = false;
      return;
    }
    try {
      el.password.value = "";
      await afterSignIn();
    } finally {
      el.signinButton.disabled = false;
    }
  }

  async function afterSignIn() {
    let principal;
    try {
      principal = await client.me();
    } catch (err) {
      renderProblem(el.signinError, problemOf(err), "Could not read your identity");
      client.token = null;
      return;
    }
    el.whoami.replaceChildren(
      "Signed in as ",
      node("strong", { dataset: { testid: "whoami-name" }, text: principal.name }),
      " ",
      node("span", { className: "muted", text: "(" + principal.kind + "; " + principal.scopes.join(", ") + ")" })
    );
    show(el.signOut, true);
    show(el.signinPanel, false);
    show(el.playground, true);
    await loadAgents();
    el.message.focus();
  }

  function signOut(reason) {
    if (run && run.live && run.controller) run.controller.abort();
    client.token = null;
    agents = [];
    sessions.clear();
    el.agentSelect.replaceChildren();
    el.whoami.textContent = "Not signed in";
    show(el.signOut, false);
    show(el.playground, false);
    show(el.signinPanel, true);
    if (reason) renderProblem(el.signinError, { title: reason });
    el.username.focus();
  }

  // ---- agents -------------------------------------------------------------------------------
  async function loadAgents() {
    let body;
    try {
      body = await call(() => client.listAgents());
    } catch (err) {
      renderProblem(el.runError, problemOf(err), "Could not list agents");
      return;
    }
    agents = body.items || [];
    el.agentSelect.replaceChildren(
      ...agents.map((agent) => node("option", { value: agent.name, text: agent.name }))
    );
    describeAgent();
  }

  function currentAgent() {
    return agents.find((agent) => agent.name === el.agentSelect.value) || null;
  }

  function describeAgent() {
    const agent = currentAgent();
    el.agentDescription.textContent = agent ? agent.description : "";
    el.agentCapabilities.replaceChildren();
    if (agent) {
      const labels = { streaming: "streaming", human_input: "human input", tools: "tools" };
      Object.entries(agent.capabilities || {}).forEach(([name, on]) => {
        el.agentCapabilities.append(
          node("li", {
            className: on ? "badge on" : "badge off",
            dataset: { capability: name, enabled: String(Boolean(on)) },
            text: (on ? "✓ " : "✗ ") + (labels[name] || name),
          })
        );
      });
    }
    renderSession();
  }

  // ---- sessions -----------------------------------------------------------------------------
  function renderSession() {
    const agent = el.agentSelect.value;
    const id = (el.aguiToggle.checked ? threads : sessions).get(agent);
    el.newSession.disabled = !el.sessionToggle.checked || !id;
    el.sessionInfo.dataset.sessionId = el.sessionToggle.checked && id ? id : "";
    if (!el.sessionToggle.checked) el.sessionInfo.textContent = "No session: each message stands alone";
    else if (id) el.sessionInfo.textContent = "Session " + id.slice(0, 8) + "… with " + agent;
    else el.sessionInfo.textContent = "A session is created with your next message";
  }

  async function ensureSession(agent) {
    if (sessions.has(agent)) return sessions.get(agent);
    let body;
    try {
      body = await call(() => client.createSession({ agent: agent }));
    } catch (err) {
      renderProblem(el.runError, problemOf(err), "Could not create a session");
      return null;
    }
    sessions.set(agent, body.id);
    renderSession();
    return body.id;
  }

  // ---- SSE parsing (https://html.spec.whatwg.org/multipage/server-sent-events.html) ---------
  function createSseParser(onFrame) {
    let buffer = "";
    let event = "";
    let data = [];
    let lastId = null;
    const newline = /\r\n|\r|\n/;

    function dispatch() {
      if (data.length) onFrame({ event: event || "message", data: data.join("\n"), id: lastId });
      event = "";
      data = [];
    }

    function line(text) {
      if (text === "") return dispatch();
      if (text[0] === ":") return undefined; // a comment: the server's keep-alive
      const colon = text.indexOf(":");
      const field = colon === -1 ? text : text.slice(0, colon);
      let value = colon === -1 ? "" : text.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && value.indexOf("\0") === -1) lastId = value;
      return undefined; // "retry" and unknown fields are ignored
    }

    return {
      push(chunk) {
        buffer += chunk;
        for (;;) {
          const match = newline.exec(buffer);
          if (!match) break;
          // A lone trailing "\r" may be the first half of a "\r\n" still in flight.
          if (match[0] === "\r" && match.index === buffer.length - 1) break;
          line(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
        }
      },
      end() {
        // Per the spec an unterminated last event is dropped; only a blank line dispatches.
        buffer = "";
        event = "";
        data = [];
      },
    };
  }

  // ---- run view -----------------------------------------------------------------------------
  const STATUS_TEXT = {
    idle: "Idle",
    starting: "Starting…",
    streaming: "Streaming…",
    awaiting_input: "Waiting for your answer",
    cancelling: "Cancelling…",
    completed: "Completed",
    cancelled: "Cancelled",
    error: "Failed",
  };

  function setState(state, text) {
    el.run.dataset.state = state;
    el.runStatus.dataset.state = state;
    el.runStatus.textContent = text || STATUS_TEXT[state] || state;
    const live = ["starting", "streaming", "awaiting_input", "cancelling"].includes(state);
    el.reply.setAttribute("aria-busy", String(live));
  }

  function resetRunView() {
    el.reply.replaceChildren();
    el.finalOutput.textContent = "";
    show(el.final, false);
    el.eventLog.replaceChildren();
    el.eventCount.textContent = "(0)";
    el.runId.textContent = "–";
    el.runMeta.textContent = "";
    show(el.runError, false);
    el.runError.classList.remove("cancelled");
    hideInputRequest();
  }

  function setLiveControls(live) {
    el.send.disabled = live;
    el.cancel.disabled = !live;
    el.agentSelect.disabled = live;
    el.sessionToggle.disabled = live;
    el.aguiToggle.disabled = live;
  }

  let loggedEvents = 0;
  let tokenCount = 0;
  let tokenLogItem = null;

  function logEvent(type, summary, seq) {
    loggedEvents += 1;
    el.eventCount.textContent = "(" + loggedEvents + ")";
    const item = node("li", { className: "event", dataset: { type: type } }, [
      node("span", { className: "seq", text: seq != null ? "#" + seq : "" }),
      node("span", { className: "type type-" + type, text: type }),
      node("span", { className: "summary", text: summary || "" }),
    ]);
    el.eventLog.append(item);
    el.eventLog.scrollTop = el.eventLog.scrollHeight;
    return item;
  }

  function short(value, limit) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    const max = limit || 160;
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  // Tokens of one LLM call go into one segment; a tool call or a message closes it.
  function appendToken(text, seq) {
    if (!run.currentSegment) {
      const textNode = document.createTextNode("");
      const segment = node("div", { className: "segment streamed" }, [textNode]);
      el.reply.append(segment);
      run.currentSegment = { element: segment, text: textNode };
    }
    run.currentSegment.text.appendData(text);
    tokenCount += 1;
    if (!tokenLogItem) tokenLogItem = logEvent("token", "", seq);
    tokenLogItem.querySelector(".summary").textContent = "× " + tokenCount;
  }

  function closeSegment() {
    if (run) run.currentSegment = null;
    tokenLogItem = null;
  }

  function appendMessage(content) {
    const streamed = run.currentSegment ? run.currentSegment.text.data : null;
    closeSegment();
    if (streamed !== null && streamed === content) return; // already shown, token by token
    el.reply.append(node("div", { className: "segment message", text: content }));
  }

  // ---- input_required -----------------------------------------------------------------------
  function hideInputRequest() {
    show(el.inputRequest, false);
    el.inputControls.replaceChildren();
    show(el.inputError, false);
    el.inputRequest.removeAttribute("data-request-id");
  }

  function showInputRequest(request) {
    el.inputRequest.dataset.requestId = request.request_id;
    el.inputRequest.dataset.kind = request.kind;
    el.inputPrompt.textContent = request.prompt;
    el.inputControls.replaceChildren();
    show(el.inputError, false);
    const answer = (value) => answerInput(request.request_id, value);
    if (request.kind === "choice") {
      (request.choices || []).forEach((choice) => {
        el.inputControls.append(
          node("button", {
            type: "button",
            className: "choice",
            dataset: { testid: "choice-" + choice, value: choice },
            text: choice,
            onclick: () => answer(choice),
          })
        );
      });
    } else if (request.kind === "confirm") {
      el.inputControls.append(
        node("button", { type: "button", dataset: { testid: "confirm-yes" }, text: "Yes", onclick: () => answer(true) }),
        node("button", { type: "button", className: "secondary", dataset: { testid: "confirm-no" }, text: "No", onclick: () => answer(false) })
      );
    } else {
      const field = node("input", { type: "text", id: "input-text", "aria-label": "Your answer", dataset: { testid: "input-text" } });
      const submit = node("button", { type: "submit", dataset: { testid: "input-submit" }, text: "Answer" });
      const form = node("form", { className: "inline-form" }, [field, submit]);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (!field.value.trim()) {
          renderProblem(el.inputError, { title: "Type an answer first" });
          return;
        }
        answer(field.value);
      });
      el.inputControls.append(form);
    }
    show(el.inputRequest, true);
    setState("awaiting_input");
    const first = el.inputControls.querySelector("button, input");
    if (first) first.focus();
  }

  async function answerInput(requestId, value) {
    if (run && run.answer) {  // AG-UI: the answer is the next run's `resume`
      const answer = run.answer;
      run.answer = null;
      logEvent("input", "answered " + JSON.stringify(value) + " (resume)");
      hideInputRequest();
      setState("streaming");
      answer(value);
      return;
    }
    if (!run || !run.runId) return;
    const controls = el.inputControls.querySelectorAll("button, input");
    controls.forEach((control) => { control.disabled = true; });
    show(el.inputError, false);
    try {
      await call(() => client.answerRun(run.runId, requestId, value));
      logEvent("input", "answered " + JSON.stringify(value));
      if (el.inputRequest.dataset.requestId === requestId) hideInputRequest();
      if (run.live && !run.cancelRequested) setState("streaming");
    } catch (err) {
      renderProblem(el.inputError, problemOf(err), err instanceof ApiError ? "Answer refused" : "");
      controls.forEach((control) => { control.disabled = false; });
    }
  }

  // ---- events -------------------------------------------------------------------------------
  function parseData(frame) {
    try {
      return JSON.parse(frame.data);
    } catch (_err) {
      return null;
    }
  }

  function onFrame(frame) {
    const data = parseData(frame);
    if (data === null) {
      logEvent(frame.event, "unparsable data: " + short(frame.data));
      return;
    }
    onEvent(data, frame.event);
  }

  // One typed event of the run (from the client's stream, or translated from AG-UI).
  function onEvent(data, frameType) {
    const type = data.type || frameType;
    const seq = data.seq;
    switch (type) {
      case "run_started":
        run.runId = data.run_id || run.runId;
        el.runId.textContent = run.runId;
        logEvent(type, data.agent + (data.session_id ? " · session " + data.session_id.slice(0, 8) + "…" : ""), seq);
        if (!run.cancelRequested) setState("streaming");
        break;
      case "token":
        appendToken(data.text || "", seq);
        break;
      case "message":
        if (data.role === "assistant") appendMessage(data.content || "");
        logEvent(type, data.role + ": " + short(data.content || ""), seq);
        break;
      case "tool_call":
        closeSegment();
        logEvent(type, data.name + "(" + short(data.arguments || {}, 120) + ")", seq);
        break;
      case "tool_result":
        logEvent(type, (data.success === false ? "✗ " : "✓ ") + short(data.output || ""), seq);
        break;
      case "plan":
        logEvent(type, (data.items || []).map((item, i) => i + 1 + ". " + item).join("  ") +
          (data.reflection ? " — " + data.reflection : ""), seq);
        break;
      case "step":
        logEvent(type, "step " + data.number + (data.success === false ? " ✗ " : " ✓ ") +
          Number(data.duration_s || 0).toFixed(2) + " s", seq);
        break;
      case "input_required":
        closeSegment();
        logEvent(type, data.kind + ": " + short(data.prompt || ""), seq);
        showInputRequest(data);
        break;
      case "error":
        run.terminal = true;
        hideInputRequest();
        logEvent(type, data.code + ": " + (data.message || ""), seq);
        if (data.code === "cancelled") {
          renderProblem(el.runError, { title: "Cancelled", detail: data.message, code: data.code });
          el.runError.classList.add("cancelled");
          setState("cancelled");
        } else {
          renderProblem(el.runError, { title: "The run failed", detail: data.message, code: data.code });
          setState("error");
        }
        break;
      case "shutdown":
        run.terminal = true;
        hideInputRequest();
        logEvent(type, data.message || "", seq);
        renderProblem(el.runError, { title: "Server restarting", detail: data.message, code: data.code });
        setState("error");
        break;
      case "run_completed": {
        run.terminal = true;
        hideInputRequest();
        closeSegment();
        el.finalOutput.textContent = data.output || "";
        show(el.final, true);
        const usage = data.usage || {};
        const meta = [
          (usage.total_tokens || 0) + " tokens (" + (usage.prompt_tokens || 0) + " in, " +
            (usage.completion_tokens || 0) + " out)",
          Number(data.execution_time || 0).toFixed(2) + " s",
        ];
        if (data.cached) meta.push("cached");
        el.runMeta.textContent = "· " + meta.join(" · ");
        logEvent(type, meta.join(" · "), seq);
        setState("completed");
        break;
      }
      default:
        logEvent(type, short(data), seq);
    }
  }

  // ---- send / cancel ------------------------------------------------------------------------
  async function send(event) {
    if (event) event.preventDefault();
    if (run && run.live) return;
    const input = el.message.value;
    const agent = el.agentSelect.value;
    resetRunView();
    loggedEvents = 0;
    tokenCount = 0;
    tokenLogItem = null;
    if (!agent) {
      renderProblem(el.runError, { title: "Pick an agent first" });
      return;
    }
    if (!input.trim()) {
      renderProblem(el.runError, { title: "Type a message first" });
      setState("idle");
      el.message.focus();
      return;
    }
    const controller = new AbortController();
    run = { runId: null, controller: controller, live: true, terminal: false, cancelRequested: false, currentSegment: null };
    const current = run;
    setLiveControls(true);
    setState("starting");
    try {
      if (el.aguiToggle.checked) {
        await streamAgui(current, agent, input);
        return;
      }
      const body = { input: input };
      if (el.sessionToggle.checked) {
        const sessionId = await ensureSession(agent);
        if (!sessionId) {
          setState("error");
          return;
        }
        body.session_id = sessionId;
      } else {
        body.store = false; // no conversation memory: do not start a session for this run
      }
      if (current.cancelRequested) {
        setState("cancelled");
        return;
      }
      await stream(current, agent, body);
    } finally {
      current.live = false;
      if (run === current) {
        setLiveControls(false);
        hideInputRequest();
      }
    }
  }

  // The native route through the client: a dropped connection is resumed with
  // Last-Event-ID (the client's backoff), an abort closes it (the server cancels the run).
  async function stream(current, agent, body) {
    let events;
    try {
      events = await call(() =>
        client.stream(agent, body, {
          signal: current.controller.signal,
          onReconnect: (info) => {
            if (run === current) logEvent("reconnect", "attempt " + info.attempt + " after #" + (info.lastEventId || "0"));
          },
        })
      );
    } catch (err) {
      if (current.controller.signal.aborted) {
        renderProblem(el.runError, { title: "Cancelled", detail: "The request was stopped before the run started." });
        setState("cancelled");
      } else if (err instanceof ApiError) {
        renderProblem(el.runError, problemOf(err), "The run could not start");
        setState("error");
      } else {
        renderProblem(el.runError, problemOf(err));
        setState("error");
      }
      return;
    }
    current.runId = events.runId;
    if (current.runId) el.runId.textContent = current.runId;
    if (!current.cancelRequested) setState("streaming");
    try {
      for await (const event of events) {
        if (run === current) onEvent(event, event.type);
      }
    } catch (err) {
      if (!current.terminal) {
        if (current.controller.signal.aborted) {
          renderProblem(el.runError, { title: "Cancelled", detail: "The connection was closed; the server stops the run." });
          setState("cancelled");
        } else {
          renderProblem(el.runError, { title: "The stream broke", detail: String(err && err.message) });
          setState("error");
        }
      }
    }
  }

  // AG-UI: a thread of the page's choosing (a fresh one per message without a session); the
  // events are translated to the native ones; a question ends the AG-UI run and the answer
  // starts the next one with `resume`, until the run of ours behind them ends.
  async function streamAgui(current, agent, input) {
    const agui = window.PlaygroundAgui;
    let threadId = el.sessionToggle.checked ? threads.get(agent) : null;
    if (!threadId) {
      threadId = agui.newId();
      if (el.sessionToggle.checked) threads.set(agent, threadId);
      renderSession();
    }
    const url = API + "/agents/" + encodeURIComponent(agent) + "/ag-ui";
    const translator = agui.createTranslator();
    const handle = (frame) => {
      const data = parseData(frame);
      if (data === null) return onFrame(frame);
      translator.translate(data).forEach((native) => {
        onFrame({ event: native.type, data: JSON.stringify(native), id: frame.id });
      });
      return undefined;
    };
    let body = agui.runInput(threadId, input);
    for (;;) {
      translator.state.interrupt = null;
      await postStream(current, url, body, handle, translator.state);
      const interrupt = translator.state.interrupt;
      if (!interrupt || current.terminal || current.cancelRequested) return;
      const value = await new Promise((resolve) => { current.answer = resolve; });
      if (current.cancelRequested) return;
      body = agui.runInput(threadId, null, [{ interruptId: interrupt.id, status: "resolved", payload: value }]);
    }
  }

  async function postStream(current, url, body, handleFrame, paused) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
        signal: current.controller.signal,
        cache: "no-store",
      });
    } catch (err) {
      if (current.controller.signal.aborted) {
        renderProblem(el.runError, { title: "Cancelled", detail: "The request was stopped before the run started." });
        setState("cancelled");
      } else {
        renderProblem(el.runError, { title: "Network error", detail: String(err && err.message) });
        setState("error");
      }
      return;
    }
    if (!response.ok) {
      const problem = await readProblem(response);
      renderProblem(el.runError, problem, "The run could not start");
      setState("error");
      if (response.status === 401) signOut("Your sign-in is no longer valid; sign in again.");
      return;
    }
    current.runId = response.headers.get("X-Run-ID");
    if (current.runId) el.runId.textContent = current.runId;
    if (!current.cancelRequested) setState("streaming");
    const parser = createSseParser((frame) => {
      if (run === current) handleFrame(frame);
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder("utf-8");
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
      parser.push(decoder.decode());
      parser.end();
    } catch (err) {
      if (!current.terminal) {
        if (current.controller.signal.aborted) {
          renderProblem(el.runError, { title: "Cancelled", detail: "The connection was closed; the server stops the run." });
          setState("cancelled");
        } else {
          renderProblem(el.runError, { title: "The stream broke", detail: String(err && err.message) });
          setState("error");
        }
      }
      return;
    }
    const interrupted = paused && paused.interrupt;  // AG-UI: the run waits for an answer
    if (!current.terminal && !interrupted && run === current) {
      renderProblem(el.runError, { title: "The stream ended before the run finished" });
      setState("error");
    }
  }

  async function cancel() {
    const current = run;
    if (!current || !current.live || current.cancelRequested) return;
    current.cancelRequested = true;
    el.cancel.disabled = true;
    setState("cancelling");
    logEvent("cancel", "requested");
    if (!current.runId) {
      current.controller.abort(); // no run id yet: closing the stream cancels the run
      return;
    }
    try {
      await call(() => client.cancelRun(current.runId));
    } catch (err) {
      if (current.live) {
        if (err instanceof ApiError) logEvent("cancel", "refused: " + err.code + "; closing the stream");
        current.controller.abort();
      }
    }
    if (current.answer) {  // AG-UI, between runs: no stream to end, the run was cancelled
      current.terminal = true;
      hideInputRequest();
      renderProblem(el.runError, { title: "Cancelled", detail: "The run was cancelled.", code: "cancelled" });
      el.runError.classList.add("cancelled");
      setState("cancelled");
      current.answer(null);
      return;
    }
    // The stream should end with an `error` event (code cancelled) at once; if it does not,
    // closing the connection cancels the run on the server anyway.
    setTimeout(() => {
      if (current.live && !current.terminal) current.controller.abort();
    }, 5000);
  }

  // ---- wiring -------------------------------------------------------------------------------
  el.signinForm.addEventListener("submit", signIn);
  el.signOut.addEventListener("click", () => signOut());
  el.agentSelect.addEventListener("change", describeAgent);
  el.sessionToggle.addEventListener("change", renderSession);
  el.aguiToggle.addEventListener("change", renderSession);
  el.newSession.addEventListener("click", () => {
    sessions.delete(el.agentSelect.value);
    threads.delete(el.agentSelect.value);
    renderSession();
  });
  el.messageForm.addEventListener("submit", send);
  el.message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send(event);
  });
  el.cancel.addEventListener("click", cancel);
  el.username.focus();
})();
