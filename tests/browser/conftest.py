"""Playwright driving the system Chromium (never `playwright install`: there is no internet)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` installs it")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def watched_page(context):  # type: ignore[no-untyped-def]
    """A new page of ``context`` recording every request's URL (``page.requests_seen``) and
    console errors and uncaught exceptions (``page.console_errors``)."""
    page = context.new_page()
    page.requests_seen = []
    page.console_errors = []
    page.on("request", lambda request: page.requests_seen.append(request.url))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    return page


def foreign_requests(requests: list[str], base: str) -> list[str]:
    """The requests that went anywhere but the app's own origin (data: and blob: URLs stay in
    the page)."""
    own = urlsplit(base).netloc
    return [u for u in requests if urlsplit(u).scheme not in ("data", "blob", "about")
            and urlsplit(u).netloc != own]  # fmt: skip


def log_in(page, base: str, user: dict[str, str], next_path: str = "/") -> None:  # type: ignore[no-untyped-def]
    """Log in through the login form, as a person would."""
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#username", user["name"])
    page.fill("#password", user["password"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")


@pytest.fixture(scope="session")
def session_state(browser, live_server: str, demo_users) -> dict:  # type: ignore[no-untyped-def]
    """A district commander's logged-in browser state (the session cookie)."""
    context = browser.new_context()
    log_in(context.new_page(), live_server, demo_users["district_commander"])
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def anonymous_page(browser, live_server: str):  # type: ignore[no-untyped-def]
    """A page with no session."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = watched_page(context)
    yield page
    context.close()


@pytest.fixture
def page(browser, live_server: str, session_state):  # type: ignore[no-untyped-def]
    """A logged-in page that records every request it makes."""
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000}, storage_state=session_state
    )
    page = watched_page(context)
    yield page
    context.close()
