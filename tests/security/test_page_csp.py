"""The playground's Content-Security-Policy allowed inline script it does not need.

``script-src 'self' 'unsafe-inline'`` on ``/`` meant any HTML that reached the page (a
rendering bug, a hostile agent answer shown unescaped) could run script with the user's
token in reach. The page has no inline script, handler or style (its code is
/static/playground.js), so the policy now allows this origin only. Checked in real headless
Chromium (Debian's /usr/bin/chromium through Playwright) against a real server process:
injected inline script, an ``onclick=`` handler and an inline ``<style>`` are all blocked
and reported. The docs pages keep their own hash-pinned policy (app/api/docs.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import launched_chromium
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.xdist_group("page-csp")  # one server and one browser

# Records CSP violations from the first script on every page (init scripts bypass the CSP).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective);
});
"""
# Each injection sets window.__ran[name] if the browser lets it run.
INJECTIONS = {
    "inline-script": """() => {
        const script = document.createElement("script");
        script.textContent = "window.__ran = Object.assign(window.__ran || {}, {inline: true});";
        document.body.append(script);
    }""",
    "event-handler": """() => {
        const button = document.createElement("button");
        button.setAttribute(
            "onclick", "window.__ran = Object.assign(window.__ran || {}, {handler: true})");
        document.body.append(button);
        button.click();
    }""",
    "inline-style": """() => {
        const style = document.createElement("style");
        style.textContent = "body { outline: 7px solid rgb(1, 2, 3); }";
        document.head.append(style);
        if (getComputedStyle(document.body).outlineWidth === "7px") {
            window.__ran = Object.assign(window.__ran || {}, {style: true});
        }
    }""",
}


def directives(csp: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in csp.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium("the CSP browser tests") as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.add_init_script(CSP_RECORDER)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_playground_policy_allows_scripts_and_styles_from_this_origin_only(
    server: ServerProcess,
) -> None:
    for path in ("/", "/static/playground.js"):
        policy = directives(
            httpx.get(server.url + path, timeout=10).headers["content-security-policy"]
        )
        assert policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"], path
        assert policy["base-uri"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    # The docs pages send their own policy: no CDN, inline blocks pinned by hash.
    docs = httpx.get(server.url + "/docs", timeout=10).headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in docs
    assert "'unsafe-inline'" not in directives(docs)["script-src"]


@pytest.mark.parametrize(
    ("name", "directive"),
    [
        ("inline-script", "script-src-elem"),
        ("event-handler", "script-src-attr"),
        ("inline-style", "style-src-elem"),
    ],
)
def test_injected_inline_code_does_not_run_on_the_playground(
    server: ServerProcess, page: Page, name: str, directive: str
) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("#signin-form")
    assert page.evaluate("window.__cspViolations") == []  # the page itself needs no exception
    page.evaluate(INJECTIONS[name])
    deadline = time.monotonic() + 5
    while directive not in page.evaluate("window.__cspViolations") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert directive in page.evaluate("window.__cspViolations")
    assert page.evaluate("window.__ran || {}") == {}
