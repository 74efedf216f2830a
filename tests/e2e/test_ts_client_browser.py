"""The TypeScript client's bundle in real headless Chromium, loaded by the playground page
under the page's Content-Security-Policy (the same file playground.js imports): a stream cut
in the middle of a frame resumes with Last-Event-ID with nothing lost or repeated, an abort
cancels the run, and a refusal is an ApiError. Node is covered by test_ts_client.py.
If the browser cannot start, the tests fail (they do not skip).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import login
from tests.support.browser import launched_chromium
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ts-client-browser")]

CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""

# Runs in the page: the client from /static, a fetch that cuts the first stream mid-frame.
SCENARIO = """
async (token) => {
  const { AgentServiceClient, ApiError } = await import("/static/agent-service-client.js");
  const unique = () => Math.random().toString(36).replace(/[0-9.]/g, ""); // no cache hits
  const requests = [];
  let cut = false;
  const cutting = async (input, init) => {
    const headers = (init && init.headers) || {};
    requests.push({ url: String(input), lastEventId: headers["Last-Event-ID"] || null });
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
        if (tokens < 4) return controller.enqueue(value);
        controller.enqueue(value.slice(0, Math.floor(value.length / 2)));
        await reader.cancel();
        controller.error(new TypeError("network connection lost"));
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  const client = new AgentServiceClient({ token, fetch: cutting });
  const run = await client.stream(
    "chat",
    { input: "Tell me about the sea " + unique(), on_disconnect: "continue" },
    { reconnect: { initialDelayMs: 50 } },
  );
  const events = [];
  for await (const event of run) events.push(event);
  const resumedWith = requests.at(-1);

  const controller = new AbortController();
  const aborted = await client.stream(
    "chat", { input: "A long story " + unique() }, { signal: controller.signal },
  );
  let abortError = null;
  try {
    for await (const event of aborted) if (event.type === "token") controller.abort();
  } catch (error) {
    abortError = error.name;
  }

  let refused = null;
  try {
    await client.getRun("no-such-run");
  } catch (error) {
    const isApiError = error instanceof ApiError;
    refused = { isApiError, status: error.status, code: error.code, detail: error.detail };
  }
  return {
    seqs: events.map((e) => e.seq),
    types: events.map((e) => e.type),
    tokens: events.filter((e) => e.type === "token").map((e) => e.text).join(""),
    output: events.at(-1).output,
    reconnects: run.reconnects,
    runId: run.runId,
    resumedWith,
    abortedRunId: aborted.runId,
    abortError,
    refused,
  };
}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(env={"OFFLINE_TOKENS_PER_SECOND": "40"}) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium("the TypeScript client's browser test") as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context()
    context.add_init_script(CSP_RECORDER)
    page = context.new_page()
    page.goto(server.url + "/")
    yield page
    context.close()


def test_the_bundle_streams_resumes_aborts_and_refuses_in_a_browser(
    page: Page, server: ServerProcess
) -> None:
    seen: dict[str, Any] = page.evaluate(SCENARIO, login(server.url))
    assert seen["types"][0] == "run_started" and seen["types"][-1] == "run_completed"
    assert seen["seqs"] == list(range(1, len(seen["seqs"]) + 1)), "each event once, in order"
    assert seen["reconnects"] == 1
    resumed = seen["resumedWith"]
    assert resumed["url"].endswith(f"/v1/runs/{seen['runId']}/events")
    assert resumed["lastEventId"] is not None and resumed["lastEventId"].isdigit()
    assert seen["tokens"] == seen["output"], "no token lost or repeated"

    assert seen["abortError"] == "AbortError"
    assert seen["refused"]["isApiError"] and seen["refused"]["status"] == 404
    assert seen["refused"]["code"] and seen["refused"]["detail"]
    assert page.evaluate("window.__cspViolations") == []

    # The aborted run was cancelled by the server when the browser closed the connection.
    token = login(server.url)
    record = _settled(server, token, seen["abortedRunId"])
    assert record["status"] == "cancelled" and record["error_code"] == "client_disconnected"


def _settled(server: ServerProcess, token: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(
            f"{server.url}/v1/runs/{run_id}", headers={"Authorization": f"Bearer {token}"}
        )
        record: dict[str, Any] = response.json()
        if record["status"] != "running" or time.monotonic() > deadline:
            return record
        time.sleep(0.05)  # the server notices the closed socket within a second
