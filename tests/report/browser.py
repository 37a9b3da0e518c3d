"""A headless Chromium for the report's tests: Debian's ``chromium`` driven by Playwright.

Why Playwright: its Python package drives a browser it did not download
(``executable_path``), and it answers what these tests ask in one call each: every request
the page makes (``page.on("request")`` and ``context.route`` to abort them), console errors and
uncaught exceptions, DOM queries that wait, clicks and typing as a user does, screenshots.
chromedriver + Selenium would need a second Debian package pinned to the browser's version and
has no request interception without a proxy; raw CDP over a websocket would mean writing that
plumbing here.

Skipped with the reason when the browser or the package is missing, failed instead when
``SIPEMU_REQUIRE_PEERS=1`` (as tests/peers.py does for the other peer programs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["OpenedReport", "artifacts_dir", "browser", "chromium_path", "expect", "opener"]

READY_TIMEOUT_MS = 60_000


def _missing(what: str) -> None:
    if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
        pytest.fail(f"{what} and SIPEMU_REQUIRE_PEERS=1 requires it")
    pytest.skip(what)


def chromium_path() -> str:
    """Debian's chromium (``SIPEMU_CHROMIUM`` names another build of it)."""
    path = os.environ.get("SIPEMU_CHROMIUM") or shutil.which("chromium")
    if not path:
        _missing("chromium is not installed (Debian: apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per test module: while Playwright's sync API runs, its event loop is the
    thread's running loop, so ``asyncio.run`` (live tests, real-time runs) fails until it
    stops; a module's browser stops before the next module runs."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class OpenedReport:
    """A report open in a fresh browser context, with what the page did besides drawing."""

    context: Any
    page: Any
    url: str
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions."""
    requests: list[str] = field(default_factory=list)
    """Every request the page made, the report's own file included."""
    aborted: list[str] = field(default_factory=list)
    """Requests other than the report's own file: each is aborted before it leaves."""

    def count(self, selector: str) -> int:
        return int(self.page.locator(selector).count())

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        path = artifacts_dir() / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def expect(locator: Any) -> Any:
    """Playwright's retrying assertions (``expect(locator).to_have_count(n)``): they query
    the DOM through selectors, which the report's CSP allows (``wait_for_function`` with a
    string evaluates it, which the CSP forbids: no 'unsafe-eval')."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def artifacts_dir() -> Path:
    """Where screenshots go: ``SIPEMU_ARTIFACTS`` (CI keeps it), else a temporary folder."""
    given = os.environ.get("SIPEMU_ARTIFACTS")
    if given:
        path = Path(given)
    else:
        import tempfile

        path = Path(tempfile.gettempdir()) / "sipemu-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open(browser: Any, path: Path, width: int, height: int) -> OpenedReport:
    """Open the report file and wait until its script has drawn it (``body[data-ready]``)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    url = path.resolve().as_uri()
    opened = OpenedReport(context, page, url)

    def route(route: Any) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            opened.aborted.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on(
        "console",
        lambda message: opened.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: opened.errors.append(f"uncaught: {error}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready]", timeout=READY_TIMEOUT_MS)
    return opened


@pytest.fixture
def opener(browser: Any) -> Iterator[Any]:
    """``opener(path, width=, height=)`` opens a report in a fresh context, closed after the
    test."""
    opened: list[OpenedReport] = []

    def open_report(path: Path, *, width: int = 1400, height: int = 1000) -> OpenedReport:
        report = _open(browser, path, width, height)
        opened.append(report)
        return report

    yield open_report
    for report in opened:
        report.context.close()
