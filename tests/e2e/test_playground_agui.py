"""The playground's AG-UI toggle in real headless Chromium against a real server process: the
same agent over POST /v1/agents/{agent}/ag-ui gives the same conversation as over the native
stream, with no console errors and no CSP violation (the page loads no AG-UI library)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login
from tests.e2e.test_playground import (  # noqa: F401 - fixtures used by name
    Watched,
    _send,
    _signed_in,
    _unique,
    _watch_reply,
    browser,
    server,
    watched,
)
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("playground-agui")]


def test_agui_and_native_streams_give_the_same_answer(
    server: ServerProcess,  # noqa: F811 - the playground module's fixture
    watched: Watched,  # noqa: F811
) -> None:
    page = watched.page
    _signed_in(page, server)
    prompt = _unique("Compare the transports")
    _send(page, "chat", prompt)
    _, state = _watch_reply(page)
    assert state == "completed"
    native = page.get_by_test_id("final-output").text_content()

    page.get_by_test_id("agui-toggle").check()
    _send(page, "chat", prompt)
    samples, state = _watch_reply(page)
    assert state == "completed", page.get_by_test_id("run-error").text_content()
    final = page.get_by_test_id("final-output").text_content() or ""
    assert final == native and samples[-1] == final
    assert any(0 < len(s) < len(final) for s in samples), "the AG-UI reply did not stream"
    log = page.get_by_test_id("event-log")
    expect(log.locator('[data-type="run_started"]')).to_have_count(1)
    expect(log.locator('[data-type="step"]')).to_have_count(1)
    expect(page.get_by_test_id("run-id")).to_have_text(re.compile(r"[0-9a-f]{32}"))
    watched.assert_clean()


def test_agui_interrupts_are_answered_with_the_buttons(
    server: ServerProcess,  # noqa: F811 - the playground module's fixture
    watched: Watched,  # noqa: F811
) -> None:
    page = watched.page
    _signed_in(page, server)
    page.get_by_test_id("agui-toggle").check()
    page.get_by_test_id("session-toggle").check()
    _send(page, "approval", _unique("Rotate the API keys"))
    request = page.get_by_test_id("input-request")
    expect(request).to_have_attribute("data-kind", "choice", timeout=15_000)
    page.get_by_test_id("choice-high").click()
    expect(request).to_have_attribute("data-kind", "confirm")
    expect(page.get_by_test_id("input-prompt")).to_contain_text("high priority")
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-state", "completed")
    expect(page.get_by_test_id("final-output")).to_contain_text("Approved at high priority")
    log = page.get_by_test_id("event-log")
    expect(log.locator('[data-type="input_required"]')).to_have_count(2)
    expect(log.locator('[data-type="plan"]')).to_have_count(1)
    # The thread the page chose (a UUID) is a session of ours, with the exchange in it.
    thread = page.get_by_test_id("session-info").get_attribute("data-session-id")
    assert thread and re.fullmatch(r"[0-9a-f-]{36}", thread)
    token = login(server.url)
    history = httpx.get(
        f"{server.url}/v1/sessions/{thread}/messages",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert [m["role"] for m in history.json()["items"]] == ["user", "assistant"]
    watched.assert_clean()
