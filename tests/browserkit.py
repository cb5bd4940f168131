"""Shared bits for the real-browser tests: Debian's chromium via Playwright, offline pages, image checks.

The launch flags, the chromium path and the "is a browser here?" check are ``tests/test_browser.py``'s
(imported, so both tests launch the same browser the same way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, _content_fraction, _require_browser

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "content_fraction",
    "launch",
    "offline_page",
    "require_browser",
]

require_browser = _require_browser
content_fraction = _content_fraction


@contextmanager
def launch() -> Iterator[Any]:
    """A headless chromium (Playwright's ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def offline_page(browser: Any, html: Path, *, width: int = 1200, height: int = 900) -> tuple[Any, list[str]]:
    """Open a local HTML file with every non-``file:`` request refused (CDNs, fonts: a reader offline).

    Returns the page and the list of the URLs refused.
    """
    page = browser.new_page(viewport={"width": width, "height": height})
    refused: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(html.resolve().as_uri(), timeout=60_000)
    return page, refused
