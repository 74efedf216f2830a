"""Debian's headless Chromium driven by Playwright, for the browser tests.

Never `playwright install` (it downloads a browser); the flags keep Chromium off the
network the machine does not have (background networking, updates, sync, QUIC)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

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


@contextmanager
def launched_chromium(purpose: str) -> Iterator[Browser]:
    """A running Chromium for ``purpose`` (named in the failure when it cannot start)."""
    playwright: Playwright | None = None
    try:
        playwright = sync_playwright().start()
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:
        if playwright is not None:
            playwright.stop()
        pytest.fail(
            f"Headless Chromium ({CHROMIUM}) could not be started by Playwright; {purpose} "
            f"need it (do not run `playwright install`): {exc}",
            pytrace=False,
        )
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
