"""Headless Chromium for tests (Debian's /usr/bin/chromium driven by Playwright)."""

import shutil
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def have_chromium() -> bool:
    return shutil.which("chromium") is not None


needs_chromium = pytest.mark.skipif(not have_chromium(), reason="Debian chromium is not installed")


@contextmanager
def browser_page(width: int = 1280, height: int = 900):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
