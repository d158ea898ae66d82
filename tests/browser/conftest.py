"""Fixtures of the browser tests: Playwright driving the system's Chromium against a live server and a real worker."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from devtools.processes import BASE_DIR
from tests.browser.waiting import TIMEOUT_MS
from users.models import User

DEFAULT_CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_DIR = BASE_DIR / "test-artifacts" / "screenshots"
# Debian's Chromium as root in a container: no sandbox, no GPU, /tmp rather than a small /dev/shm.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """Return where Chromium should be: CHROMIUM_PATH, else `chromium` on the PATH, else Debian's path."""
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or DEFAULT_CHROMIUM


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Skip when no Chromium is installed; an installed one that does not start fails the tests instead."""
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"no Chromium at {path}: install Debian's chromium package (apt-get install chromium)")
    return path


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, for the browser tests only."""
    # Its sync API keeps an event loop running in this thread, which Django takes for an async
    # context and refuses the ORM in; the test code is synchronous all the same, so allow it while
    # the loop runs. Package scope: loop and flag end before the rest of the suite (processes
    # started meanwhile inherit the flag: nothing in them runs in an event loop).
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as driver:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield driver


@pytest.fixture(scope="package")
def browser(chromium_executable: str, playwright: Playwright) -> Iterator[Browser]:
    """Chromium, headless, launched by path: Playwright never downloads a browser here."""
    launched = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies), its relative URLs on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def staff_page(page: Page, staff_user: User, password: str) -> Page:
    """The page, signed into the admin through its login form as a superuser."""
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("E-mail address").fill(staff_user.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text("Log out", timeout=TIMEOUT_MS)
    return page


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Save a screenshot of a browser test's page when it fails (and always with BROWSER_SCREENSHOTS set)."""
    report = yield
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and page is not None and (report.failed or os.environ.get("BROWSER_SCREENSHOTS")):
        path = _screenshot(page, name=item.name)
        report.sections.append(("screenshot", f"saved to {path}"))
        if report.failed:
            print(f"\nscreenshot of {item.nodeid}: {path}")
    return report


def _screenshot(page: Page, *, name: str) -> Path | str:
    path = SCREENSHOTS_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception as error:  # A crashed page must not hide the test's own failure.
        return f"none ({type(error).__name__}: {error})"
    return path
