"""/docs and /redoc in real headless Chromium, against a real server, with no internet.

Every request the browser makes to anything but the loopback server is aborted and
recorded, as on a disconnected network: the pages must still render every operation, make
no such request at all, log no console error and hit no Content-Security-Policy violation.
Debian's /usr/bin/chromium is driven by Playwright (never ``playwright install``); if it
cannot start, the tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from tests.e2e.conftest import ADMIN_PASSWORD
from tests.support.server_process import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
INVOKE_PATH = "/v1/agents/{agent}/invoke"
INVOKE_SUMMARY = "Run an agent and wait for its answer"

pytestmark = pytest.mark.xdist_group("docs_offline")

# Records CSP violations from the first script on every page (init scripts bypass the CSP).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # The Swagger UI test signs in through the docs page.
    with ServerProcess(env={"RATE_LIMIT_ROUTES": '{"POST /v1/auth/token": "100/minute"}'}) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    playwright: Playwright | None = None
    try:
        playwright = sync_playwright().start()
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:
        if playwright is not None:
            playwright.stop()
        pytest.fail(
            f"Headless Chromium ({CHROMIUM}) could not be started by Playwright; the docs "
            f"browser tests need it (do not run `playwright install`): {exc}",
            pytrace=False,
        )
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


@dataclass
class OfflinePage:
    """A page on a network where only the loopback server answers, and what it reported."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__cspViolations || []"))

    def assert_clean(self) -> None:
        assert self.blocked == [], f"the page tried to reach other hosts: {self.blocked}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.csp_violations() == [], "CSP violations"


@pytest.fixture
def offline(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context()
    context.add_init_script(CSP_RECORDER)
    result = OfflinePage(context.new_page())

    def only_loopback(route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in LOOPBACK_HOSTS:
            route.continue_()
        else:
            result.blocked.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    result.page.set_default_timeout(15_000)
    result.page.on(
        "console", lambda msg: result.console_errors.append(msg.text) if msg.type == "error" else 0
    )
    result.page.on("pageerror", lambda exc: result.page_errors.append(str(exc)))
    try:
        yield result
    finally:
        context.close()


def test_the_network_block_and_csp_recorder_work(server: ServerProcess, offline: OfflinePage):
    """The guard of the tests below: an off-host request is caught, not silently allowed."""
    offline.page.goto(server.url + "/docs")
    offline.page.evaluate(
        "() => { const img = document.createElement('img');"
        " img.src = 'https://cdn.example.invalid/x.png'; document.body.append(img); }"
    )
    expect(offline.page.locator("#swagger-ui")).to_be_attached()
    offline.page.wait_for_function("window.__cspViolations.length > 0")
    assert any(v.startswith("img-src") for v in offline.csp_violations())


def test_swagger_ui_renders_every_operation_offline(server: ServerProcess, offline: OfflinePage):
    page = offline.page
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("agent-service")
    invoke = page.locator(f'.opblock[id$="post_invoke_v1_agents__agent__invoke_post"]')
    expect(invoke).to_have_count(1)
    expect(invoke.locator(".opblock-summary-path")).to_have_attribute("data-path", INVOKE_PATH)
    expect(invoke.locator(".opblock-summary-description")).to_have_text(INVOKE_SUMMARY)
    spec = page.evaluate("() => fetch('/openapi.json').then((r) => r.json())")
    operations = sum(len(item) for item in spec["paths"].values())
    expect(page.locator(".opblock")).to_have_count(operations)
    offline.assert_clean()


def test_swagger_ui_signs_in_and_calls_the_api_offline(
    server: ServerProcess, offline: OfflinePage
):
    """The docs are usable, not just visible: OAuth2 password sign-in, then Try it out."""
    page = offline.page
    page.goto(server.url + "/docs")
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("#oauth_username").fill("admin")
    dialog.locator("#oauth_password").fill(ADMIN_PASSWORD)
    dialog.get_by_role("button", name="Authorize").first.click()
    expect(dialog.get_by_role("button", name="Logout").first).to_be_visible()
    dialog.get_by_role("button", name="Close").first.click()

    agents = page.locator('.opblock[id$="get_list_agents_v1_agents_get"]')
    agents.locator(".opblock-summary").click()
    agents.get_by_role("button", name="Try it out").click()
    agents.get_by_role("button", name="Execute").click()
    status = agents.locator(".live-responses-table .response .response-col_status")
    expect(status.first).to_have_text("200")
    expect(agents.locator(".live-responses-table .microlight").first).to_contain_text('"approval"')
    offline.assert_clean()


def test_redoc_renders_every_operation_offline(server: ServerProcess, offline: OfflinePage):
    page = offline.page
    page.goto(server.url + "/redoc")
    expect(page.get_by_role("heading", name=INVOKE_SUMMARY, exact=True)).to_be_visible()
    # The endpoint box of each operation shows its method and path.
    expect(page.locator(f"text={INVOKE_PATH}").first).to_be_attached()
    spec = page.evaluate("() => fetch('/openapi.json').then((r) => r.json())")
    for item in spec["paths"].values():
        for operation in item.values():
            expect(page.get_by_role("heading", name=operation["summary"], exact=True)).to_have_count(1)
    offline.assert_clean()
