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
