"""The playground page (GET /) in real headless Chromium against a real server process.

Debian's /usr/bin/chromium is driven by Playwright's sync API (never ``playwright install``).
Every browser test also checks that the page logged no console errors, threw nothing and hit
no Content-Security-Policy violation: the page must work under the CSP the service sends.
If the browser cannot start, the tests fail (they do not skip).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    expect,
)

from tests.e2e.conftest import ADMIN_PASSWORD, login
from tests.support.browser import launched_chromium
from tests.support.server_process import PROTOCOLS_ON, ServerProcess

TERMINAL_STATES = ("completed", "error", "cancelled")

# One pytest-xdist worker runs the whole module: one server and one browser, not one per worker.
pytestmark = pytest.mark.xdist_group("playground")

# Records CSP violations from the first script on every page (init scripts bypass the CSP).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        **PROTOCOLS_ON,  # the playground can speak AG-UI (test_playground_agui.py)
        # 15 tokens/s: a chat reply (14+ tokens) takes about a second, slow enough to watch.
        "OFFLINE_TOKENS_PER_SECOND": "15",
        # Every browser test signs in; the default 10/minute on the token route is too tight.
        "RATE_LIMIT_ROUTES": '{"POST /v1/auth/token": "100/minute"}',
    }
    with ServerProcess(env=env) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium("the playground browser tests") as chromium:
        yield chromium


@dataclass
class Watched:
    """A page plus everything it reported that would mean the page is broken."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__cspViolations || []"))

    def assert_clean(self, *, allow: tuple[str, ...] = ()) -> None:
        unexpected = [m for m in self.console_errors if not any(a in m for a in allow)]
        assert unexpected == [], f"console errors: {unexpected}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.csp_violations() == [], "CSP violations"


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context()
    context.add_init_script(CSP_RECORDER)
    page = context.new_page()
    page.set_default_timeout(10_000)
    result = Watched(page)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            result.console_errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: result.page_errors.append(str(exc)))
    try:
        yield result
    finally:
        context.close()


def _sign_in(page: Page, server: ServerProcess, password: str = ADMIN_PASSWORD) -> None:
    page.goto(server.url + "/")
    expect(page.get_by_test_id("playground")).to_be_hidden()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_test_id("signin-button").click()


def _signed_in(page: Page, server: ServerProcess) -> None:
    _sign_in(page, server)
    expect(page.get_by_test_id("whoami-name")).to_have_text("admin")
    expect(page.get_by_test_id("playground")).to_be_visible()


def _send(page: Page, agent: str, message: str) -> None:
    page.get_by_test_id("agent-select").select_option(agent)
    page.get_by_test_id("message").fill(message)
    page.get_by_test_id("send").click()


def _watch_reply(page: Page, timeout: float = 15) -> tuple[list[str], str]:
    """Sample the reply text until the run ends: (samples, final state)."""
    samples: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text, state = page.evaluate(
            "() => [document.getElementById('reply').textContent,"
            " document.getElementById('run').dataset.state]"
        )
        samples.append(text)
        if state in TERMINAL_STATES:
            return samples, state
        time.sleep(0.02)
    raise AssertionError(f"the run did not end within {timeout} s; last reply: {samples[-1]!r}")


def _unique(text: str) -> str:
    return f"{text} ({uuid.uuid4().hex[:6]})"  # distinct prompts: no cached replay


# --- plain HTTP ---------------------------------------------------------------------------------


def test_page_and_assets_are_served_with_the_page_csp(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert '<script src="/static/playground.js"' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline script
    assert re.search(r"""(src|href)=["']?(https?:)?//""", html) is None  # nothing external

    script = httpx.get(f"{server.url}/static/playground.js", timeout=10)
    assert script.status_code == 200
    assert re.match(r"(text|application)/javascript", script.headers["content-type"])
    assert script.headers["x-content-type-options"] == "nosniff"
    assert re.search(r"(local|session)Storage\s*[.\[]", script.text) is None  # token in memory

    style = httpx.get(f"{server.url}/static/playground.css", timeout=10)
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")

    missing = httpx.get(f"{server.url}/static/secrets.env", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


# --- the browser --------------------------------------------------------------------------------


def test_the_csp_violation_detector_works(server: ServerProcess, watched: Watched) -> None:
    watched.page.goto(server.url + "/")
    watched.page.evaluate(
        "() => { const img = document.createElement('img');"
        " img.src = 'https://example.invalid/x.png'; document.body.append(img); }"
    )
    deadline = time.monotonic() + 5
    while not watched.csp_violations() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(v.startswith("img-src") for v in watched.csp_violations())


def test_sign_in_shows_who_and_the_agents(server: ServerProcess, watched: Watched) -> None:
    page = watched.page
    _signed_in(page, server)
    expect(page.get_by_test_id("whoami")).to_contain_text("user")
    expect(page.get_by_test_id("signin-form")).to_be_hidden()
    options = page.get_by_test_id("agent-select").locator("option")
    expect(options).to_have_count(3)
    assert sorted(options.all_text_contents()) == ["approval", "assistant", "chat"]
    page.get_by_test_id("agent-select").select_option("approval")
    expect(page.get_by_test_id("agent-description")).to_contain_text("human confirms")
    human = page.locator('#agent-capabilities [data-capability="human_input"]')
    expect(human).to_have_attribute("data-enabled", "true")
    assert page.evaluate("Object.keys(window.localStorage).length") == 0
    watched.assert_clean()


def test_a_wrong_password_shows_an_error(server: ServerProcess, watched: Watched) -> None:
    page = watched.page
    _sign_in(page, server, password="not-the-password")
    error = page.get_by_test_id("signin-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Incorrect username or password")
    expect(error).to_contain_text("invalid_credentials")
    expect(page.get_by_test_id("playground")).to_be_hidden()
    expect(page.get_by_test_id("whoami")).to_have_text("Not signed in")
    # Chromium logs the failed fetch itself ("Failed to load resource ... 401"): expected here.
    watched.assert_clean(allow=("status of 401",))


def test_a_run_refused_before_streaming_shows_the_problem(
    server: ServerProcess, watched: Watched
) -> None:
    page = watched.page
    _signed_in(page, server)
    _send(page, "chat", "x" * 2001)  # over MAX_INPUT_CHARS: a 422 problem, no stream
    expect(page.get_by_test_id("run")).to_have_attribute("data-state", "error")
    error = page.get_by_test_id("run-error")
    expect(error).to_contain_text("The run could not start")
    expect(error).to_contain_text("at most 2000 characters")
    expect(error.get_by_test_id("error-code")).to_have_text("validation_error")
    expect(page.get_by_test_id("send")).to_be_enabled()
    watched.assert_clean(allow=("status of 422",))


def test_chat_reply_streams_token_by_token(server: ServerProcess, watched: Watched) -> None:
    page = watched.page
    _signed_in(page, server)
    _send(page, "chat", _unique("Explain streaming in one breath"))
    samples, state = _watch_reply(page)
    assert state == "completed", page.get_by_test_id("run-error").text_content()
    final = page.get_by_test_id("final-output").text_content() or ""
    assert final and samples[-1] == final
    growing = [s for s in samples if 0 < len(s) < len(final)]
    assert growing, "the reply never showed a partial text: it did not stream"
    assert len({len(s) for s in growing}) >= 3, "tokens arrived in bursts, not one by one"
    assert all(final.startswith(s) for s in samples)  # it only ever grew
    expect(page.get_by_test_id("run-status")).to_have_text("Completed")
    expect(page.get_by_test_id("run-id")).to_have_text(re.compile(r"\S{8,}"))
    log = page.get_by_test_id("event-log")
    expect(log.locator('[data-type="run_started"]')).to_have_count(1)
    expect(log.locator('[data-type="run_completed"]')).to_have_count(1)
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(page.get_by_test_id("cancel")).to_be_disabled()
    watched.assert_clean()


def test_approval_is_answered_with_the_buttons(server: ServerProcess, watched: Watched) -> None:
    page = watched.page
    _signed_in(page, server)
    _send(page, "approval", _unique("Rotate the API keys"))
    request = page.get_by_test_id("input-request")
    expect(request).to_have_attribute("data-kind", "choice", timeout=15_000)
    expect(page.get_by_test_id("input-prompt")).to_contain_text("priority")
    expect(page.get_by_test_id("run")).to_have_attribute("data-state", "awaiting_input")
    for choice in ("low", "normal", "high"):
        expect(page.get_by_test_id(f"choice-{choice}")).to_be_visible()
    page.get_by_test_id("choice-high").click()
    expect(request).to_have_attribute("data-kind", "confirm")
    expect(page.get_by_test_id("input-prompt")).to_contain_text("high priority")
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-state", "completed")
    expect(request).to_be_hidden()
    expect(page.get_by_test_id("final-output")).to_contain_text("Approved at high priority")
    expect(page.get_by_test_id("reply")).to_contain_text("Approved at high priority")
    log = page.get_by_test_id("event-log")
    expect(log.locator('[data-type="plan"]')).to_have_count(1)
    expect(log.locator('[data-type="input_required"]')).to_have_count(2)
    expect(log.locator('[data-type="step"]')).to_have_count(2)
    watched.assert_clean()


def test_a_session_remembers_the_conversation(server: ServerProcess, watched: Watched) -> None:
    page = watched.page
    _signed_in(page, server)
    page.get_by_test_id("session-toggle").check()
    run = page.get_by_test_id("run")
    _send(page, "chat", _unique("My name is Ada"))
    expect(run).to_have_attribute("data-state", "completed", timeout=15_000)
    info = page.get_by_test_id("session-info")
    session_id = info.get_attribute("data-session-id")
    assert session_id and re.fullmatch(r"[0-9a-f]{32}", session_id)
    page.get_by_test_id("message").fill(_unique("What is my name?"))
    page.get_by_test_id("send").click()
    expect(run).to_have_attribute("data-state", "completed", timeout=15_000)
    assert info.get_attribute("data-session-id") == session_id
    token = login(server.url)
    history = httpx.get(
        f"{server.url}/v1/sessions/{session_id}/messages",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert history.status_code == 200, history.text
    messages = history.json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    watched.assert_clean()


def _metric(server: ServerProcess, name: str, labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_cancel_stops_a_live_run(watched: Watched) -> None:
    page = watched.page
    # One token a second: a chat reply takes 14+ s, so the run is live when Cancel is pressed.
    with ServerProcess(env={"OFFLINE_TOKENS_PER_SECOND": "1"}) as slow:
        _signed_in(page, slow)
        _send(page, "chat", _unique("Take your time"))
        reply = page.get_by_test_id("reply")
        expect(reply).not_to_be_empty(timeout=10_000)
        partial = reply.text_content() or ""
        cancel = page.get_by_test_id("cancel")
        expect(cancel).to_be_enabled()
        cancel.click()
        run = page.get_by_test_id("run")
        expect(run).to_have_attribute("data-state", "cancelled", timeout=5_000)
        expect(page.get_by_test_id("run-status")).to_have_text("Cancelled")
        error = page.get_by_test_id("run-error")
        expect(error).to_be_visible()
        expect(error.get_by_test_id("error-code")).to_have_text("cancelled")
        # It ended in-band: the server's `error` event, not a dropped connection.
        log = page.get_by_test_id("event-log")
        expect(log.locator('[data-type="error"]')).to_contain_text("cancelled")
        expect(page.get_by_test_id("final")).to_be_hidden()
        assert (reply.text_content() or "").startswith(partial)
        expect(page.get_by_test_id("send")).to_be_enabled()
        expect(cancel).to_be_disabled()
        assert _metric(slow, "agent_runs_total", 'agent="chat",status="cancelled"') == 1
        assert _metric(slow, "agent_active_runs", 'agent="chat"') == 0
        watched.assert_clean()
