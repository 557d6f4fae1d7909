"""The pages in a real browser: they render, and no request leaves the app's origin."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def _foreign(requests: list[str], origin: str) -> list[str]:
    own = urlsplit(origin).netloc
    return [
        url
        for url in requests
        if urlsplit(url).scheme not in ("data", "blob", "about") and urlsplit(url).netloc != own
    ]


def test_district_map_renders_offline(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/regions/120106/map", wait_until="networkidle")
    # The district outline and its ten streets are drawn as Leaflet vector paths.
    page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length >= 11")
    assert page.locator("path.leaflet-interactive").count() == 11
    assert "红桥区" in page.locator("#region-info").inner_text()
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator(".leaflet-control-layers").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "district-map.png"))
    assert _foreign(page.requests_seen, live_server) == []
    assert any("/static/vendor/leaflet/leaflet.js" in url for url in page.requests_seen)
    assert page.console_errors == []


def test_hovering_a_street_shows_its_name_and_code_in_english(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/regions/120106/map?lang=en", wait_until="networkidle")
    page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length >= 11")
    # Point at a street where its name is written (labels let the pointer through).
    label = page.locator(".gridmap-label", has_text="丁字沽街道")
    box = label.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tooltip = page.locator(".leaflet-tooltip")
    tooltip.wait_for()
    text = tooltip.inner_text()
    assert "Code" in text and "Name" in text
    assert "丁字沽街道" in text and "120106" in text
    assert _foreign(page.requests_seen, live_server) == []


def test_grid_map_shows_its_neighbours(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/regions/120106001001001/map", wait_until="networkidle")
    page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length >= 2")
    assert "120106001001001" in page.locator("#region-info").inner_text()
    assert _foreign(page.requests_seen, live_server) == []


def test_api_docs_render_offline(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/docs", wait_until="networkidle")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() >= 7
    assert _foreign(page.requests_seen, live_server) == []


def test_a_browser_without_a_session_logs_in_and_lands_where_it_asked(  # type: ignore[no-untyped-def]
    anonymous_page, live_server: str, demo_users
) -> None:
    page = anonymous_page
    page.goto(f"{live_server}/regions/120106001/map?lang=en")
    assert urlsplit(page.url).path == "/login"
    assert page.locator("#password").get_attribute("type") == "password"
    user = demo_users["street_commander"]
    page.fill("#username", user["name"])
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() in (
        "用户名或密码错误",
        "Wrong user name or password",
    )
    page.fill("#username", user["name"])
    page.fill("#password", user["password"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/regions/120106001/map?lang=en")
    page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length >= 2")
    cookie = next(c for c in page.context.cookies() if c["name"] == "gridmap_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session
    page.goto(f"{live_server}/")
    assert "street_commander" in page.inner_text("form[action='/logout']")
    page.click("form[action='/logout'] button")
    page.wait_for_url(f"{live_server}/login")
    page.goto(f"{live_server}/")
    assert urlsplit(page.url).path == "/login"  # the session has ended
    assert _foreign(page.requests_seen, live_server) == []
